//! Safe shapes for the Filter Manager calls that the sample minifilters make.
//!
//! Placeholder module list; filled in by the foundation work.
#![cfg_attr(target_os = "windows", no_std)]
