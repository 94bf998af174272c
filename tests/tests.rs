//! Integration tests: one binary, a module per capability.

mod cli;
mod legacy;
mod link;
mod policy;
mod supervisor;
mod support;
mod whatsapp;
