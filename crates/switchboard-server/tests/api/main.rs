//! Integration tests: the real app on port 0 against `mock-openrouter`, over HTTP.

mod bad_input;
mod basics;
mod branches;
mod catalog;
mod chats;
mod connections;
mod edge;
mod fault_proxy;
mod faults;
mod gateway;
mod helpers;
mod openrouter;
mod outbound;
mod proxy;
mod quota;
mod responses;
mod sdk;
mod share;
mod spend;
mod tools;
