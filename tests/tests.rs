//! Integration tests: one binary, a module per capability.

mod cli;
mod supervisor;
mod support;
