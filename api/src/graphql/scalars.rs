//! Custom scalars: IP addresses and networks, validated on input.
//!
//! UUID, DateTime (RFC 3339), JSON and Decimal come from async-graphql's own scalars.

use std::net::IpAddr;
use std::str::FromStr;

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use sea_orm::prelude::IpNetwork;

/// One IP address (v4 or v6), written as text: "203.0.113.7", "2001:db8::1".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpAddress(pub IpAddr);

#[Scalar(name = "IPAddress")]
impl ScalarType for IpAddress {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) if s.len() <= 64 => IpAddr::from_str(s.trim())
                .map(IpAddress)
                .map_err(|_| InputValueError::custom("not an IP address")),
            _ => Err(InputValueError::custom(
                "an IP address is a string such as \"203.0.113.7\"",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl From<IpNetwork> for IpAddress {
    fn from(net: IpNetwork) -> Self {
        IpAddress(net.ip())
    }
}

impl From<IpAddress> for IpNetwork {
    fn from(ip: IpAddress) -> Self {
        IpNetwork::from(ip.0)
    }
}

/// An IP network in CIDR notation ("10.0.0.0/8"), or a single address, for filters that
/// match addresses inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub IpNetwork);

#[Scalar(name = "CIDR")]
impl ScalarType for Cidr {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) if s.len() <= 64 => IpNetwork::from_str(s.trim())
                .map(Cidr)
                .map_err(|_| InputValueError::custom("not a CIDR network or IP address")),
            _ => Err(InputValueError::custom(
                "a network is a string such as \"10.0.0.0/8\"",
            )),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}
