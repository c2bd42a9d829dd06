//! Switchboard's domain: everything that is true whatever the transport.
//!
//! - [`settings`]: the one typed configuration, parsed from NextChat's variable names.
//! - [`provider`]: upstream providers as data, and key rotation.
//! - [`access`]: the access policy every entry point asks.
//! - [`error`]: the project's one error body shape.
//! - [`catalog`]: models, `CUSTOM_MODELS` rules, capabilities.
//! - [`stream`]: the SSE codec and the stream decoder into typed events.
//!
//! Architecture invariant: nothing here knows about HTTP servers, databases or async runtimes.

pub mod access;
pub mod budget;
pub mod catalog;
pub mod error;
pub mod provider;
pub mod routing;
pub mod secret;
pub mod settings;
pub mod stream;

pub use secret::Secret;
pub use settings::{Settings, SettingsError, Sources};
