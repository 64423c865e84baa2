use super::*;
use crate::record::{Syntax, UNSPECIFIED};
use crate::time::Timestamp;
