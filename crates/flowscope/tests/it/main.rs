//! Integration tests over real captures written by others (`../shared`, beside the
//! checkout) and over captures the project builds itself.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

mod common;
mod community_id;
mod hostile;
mod pcaps;
mod samples;
mod streams;
mod tracker;
mod truncation;
mod zeek;
