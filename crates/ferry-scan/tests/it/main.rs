//! ferry-scan against a corpus written by Python's own `pickle` and
//! `zipfile`, side by side with picklescan.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod corpus;
