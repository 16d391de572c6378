//! An owned reply value, for results that cross shards (multi-key and
//! keyspace-wide commands) and are merged before they are written out.
//! Single-shard commands write RESP directly and never build one.

use crate::error::Error;
use crate::resp;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    Simple(String),
    Int(i64),
    Bulk(Vec<u8>),
    Nil,
    Array(Vec<Reply>),
    Error(Error),
}

impl Reply {
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ok => resp::write_ok(out),
            Reply::Simple(s) => resp::write_simple(out, s),
            Reply::Int(i) => resp::write_int(out, *i),
            Reply::Bulk(b) => resp::write_bulk(out, b),
            Reply::Nil => resp::write_null(out),
            Reply::Array(items) => {
                resp::write_array_len(out, items.len());
                for it in items {
                    it.write_to(out);
                }
            }
            Reply::Error(e) => e.write_to(out),
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<Result<Reply, Error>> for Reply {
    fn from(r: Result<Reply, Error>) -> Self {
        r.unwrap_or_else(Reply::Error)
    }
}
