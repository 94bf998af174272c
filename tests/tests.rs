//! Integration tests: one binary, a module per capability.

mod architecture;
mod cli;
mod conformance;
mod doctor;
mod faults;
mod hardening;
mod hermes_plugin;
mod install;
mod legacy;
mod link;
mod listeners;
mod liveness;
mod logs;
mod metrics;
mod pacing;
mod policy;
mod relay;
mod service;
mod supervisor;
mod support;
mod telegram;
mod webhook;
mod wecom;
mod weixin;
mod whatsapp;
