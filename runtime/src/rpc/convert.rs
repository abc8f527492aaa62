//! Plain values and their protobuf forms: the conversions generated code builds on.

use tonic::Status;

/// Conversion of a plain value into its protobuf form (uuids as text, timestamps as
/// `google.protobuf.Timestamp`); generated message types implement it field by field.
pub trait ToProto<P> {
    /// The protobuf form.
    fn to_proto(&self) -> P;
}

/// Conversion of a protobuf value into its plain form; fails with `INVALID_ARGUMENT` on
/// malformed input (a uuid that does not parse, a missing required message).
pub trait FromProto<P>: Sized {
    /// The plain form.
    fn from_proto(proto: P) -> Result<Self, Status>;
}

macro_rules! same_in_proto {
    ($($ty:ty),*) => {$(
        impl ToProto<$ty> for $ty {
            fn to_proto(&self) -> $ty {
                self.clone()
            }
        }
        impl FromProto<$ty> for $ty {
            fn from_proto(proto: $ty) -> Result<Self, Status> {
                Ok(proto)
            }
        }
    )*};
}

same_in_proto!(String, i64, bool);

impl ToProto<String> for uuid::Uuid {
    fn to_proto(&self) -> String {
        self.to_string()
    }
}

impl FromProto<String> for uuid::Uuid {
    fn from_proto(proto: String) -> Result<Self, Status> {
        proto
            .parse()
            .map_err(|_| Status::invalid_argument(format!("`{proto}` is not a UUID")))
    }
}

impl ToProto<prost_types::Timestamp> for chrono::DateTime<chrono::Utc> {
    fn to_proto(&self) -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: self.timestamp(),
            nanos: i32::try_from(self.timestamp_subsec_nanos()).unwrap_or(0),
        }
    }
}

impl FromProto<prost_types::Timestamp> for chrono::DateTime<chrono::Utc> {
    fn from_proto(proto: prost_types::Timestamp) -> Result<Self, Status> {
        u32::try_from(proto.nanos)
            .ok()
            .and_then(|nanos| chrono::DateTime::from_timestamp(proto.seconds, nanos))
            .ok_or_else(|| Status::invalid_argument("a timestamp is out of range"))
    }
}

impl<T: ToProto<P>, P> ToProto<Vec<P>> for Vec<T> {
    fn to_proto(&self) -> Vec<P> {
        self.iter().map(ToProto::to_proto).collect()
    }
}

impl<T: FromProto<P>, P> FromProto<Vec<P>> for Vec<T> {
    fn from_proto(proto: Vec<P>) -> Result<Self, Status> {
        proto.into_iter().map(T::from_proto).collect()
    }
}

impl<T: ToProto<P>, P> ToProto<Option<P>> for Option<T> {
    fn to_proto(&self) -> Option<P> {
        self.as_ref().map(ToProto::to_proto)
    }
}

impl<T: FromProto<P>, P> FromProto<Option<P>> for Option<T> {
    fn from_proto(proto: Option<P>) -> Result<Self, Status> {
        proto.map(T::from_proto).transpose()
    }
}

/// A required message field that arrived empty: `INVALID_ARGUMENT` naming it.
pub fn required<P>(field: &str, value: Option<P>) -> Result<P, Status> {
    value.ok_or_else(|| Status::invalid_argument(format!("`{field}` is required")))
}
