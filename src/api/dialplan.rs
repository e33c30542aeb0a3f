//! `GET /api/dialplan` (the running plan and the last refused edit) and
//! `POST /api/dialplan/reload` (check the folder now; 200 with the new status, or 422 with every
//! problem while the running plan stays).

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::{unauthorized, ApiError, ApiState};
use crate::routing::live::ReloadError;

/// The 422 body of a refused reload.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReloadRefused {
    pub error: String,
    pub problems: Vec<String>,
}

pub async fn status(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    HttpResponse::Ok().json(state.plan.status())
}

pub async fn reload(req: HttpRequest, state: web::Data<ApiState>) -> HttpResponse {
    if let Some(refusal) = unauthorized(&req, &state) {
        return refusal;
    }
    let plan = state.plan.clone();
    // Loading decodes announcement WAVs: not on the API's only worker thread.
    let result = match web::block(move || plan.reload()).await {
        Ok(r) => r,
        Err(e) => return HttpResponse::InternalServerError().json(ApiError { error: e.to_string() }),
    };
    let refused = match result {
        Ok(status) => return HttpResponse::Ok().json(status),
        Err(e) => e,
    };
    let error = refused.to_string();
    match refused {
        ReloadError::NoDialplan => HttpResponse::Conflict().json(ApiError { error }),
        ReloadError::Invalid(problems) => {
            let problems = problems.iter().map(ToString::to_string).collect();
            HttpResponse::UnprocessableEntity().json(ReloadRefused { error, problems })
        }
    }
}
