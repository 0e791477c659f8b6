//! The one place where errors become HTTP responses: Bedrock's status codes, its error names
//! in `x-amzn-ErrorType`, and a `{"message": ...}` body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Throttling(String),
    #[error("{0}")]
    Internal(String),
    /// A service the request needs (the generation backend) failed.
    #[error("{0}")]
    DependencyFailed(String),
    /// The client did not send its request in time.
    #[error("{0}")]
    RequestTimeout(String),
    /// No operation Quarry serves has this method and path.
    #[error("{0}")]
    UnknownOperation(String),
}

impl ApiError {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Validation(_) => "ValidationException",
            Self::AccessDenied(_) => "AccessDeniedException",
            Self::NotFound(_) => "ResourceNotFoundException",
            Self::Conflict(_) => "ConflictException",
            Self::Throttling(_) => "ThrottlingException",
            Self::Internal(_) => "InternalServerException",
            Self::DependencyFailed(_) => "DependencyFailedException",
            Self::RequestTimeout(_) => "RequestTimeoutException",
            Self::UnknownOperation(_) => "UnknownOperationException",
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::BAD_REQUEST,
            Self::AccessDenied(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Throttling(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::DependencyFailed(_) => StatusCode::FAILED_DEPENDENCY,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::UnknownOperation(_) => StatusCode::NOT_FOUND,
        }
    }

    /// An internal failure: logged in full, answered without internals.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::Internal(format!("internal error: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "message": self.to_string() }).to_string();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(self.name()));
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
