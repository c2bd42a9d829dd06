//! Integration tests: the real app on port 0 against `mock-openrouter`, over HTTP.

mod basics;
mod catalog;
mod chats;
mod gateway;
mod helpers;
mod proxy;
mod sdk;
