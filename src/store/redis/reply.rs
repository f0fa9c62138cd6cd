//! Reading the array replies of our scripts without panicking on surprises.

use super::StoreError;
use redis::Value;

pub struct Reply(pub Vec<Value>);

impl Reply {
    pub fn bytes(&self, i: usize) -> Result<&[u8], StoreError> {
        match self.0.get(i) {
            Some(Value::BulkString(b)) => Ok(b),
            Some(Value::SimpleString(s)) => Ok(s.as_bytes()),
            other => Err(StoreError::Protocol(format!(
                "item {i}: expected a string, got {other:?}"
            ))),
        }
    }

    pub fn str(&self, i: usize) -> Result<&str, StoreError> {
        std::str::from_utf8(self.bytes(i)?)
            .map_err(|_| StoreError::Protocol(format!("item {i}: not UTF-8")))
    }

    pub fn int(&self, i: usize) -> Result<i64, StoreError> {
        match self.0.get(i) {
            Some(Value::Int(n)) => Ok(*n),
            Some(Value::BulkString(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| StoreError::Protocol(format!("item {i}: not an integer"))),
            other => Err(StoreError::Protocol(format!(
                "item {i}: expected an integer, got {other:?}"
            ))),
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
