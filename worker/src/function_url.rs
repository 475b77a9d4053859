//! Function URLs: an HTTPS endpoint on the function's alias, created, updated and removed
//! with `lambda.toml`'s `[url]` table.
//!
//! The URL sits on the alias (`Qualifier`), so it always reaches the version traffic is on,
//! weighted routing included. With `auth = "NONE"` the function's resource-based policy must
//! allow public invoke: since October 2025 a new URL needs both `lambda:InvokeFunctionUrl`
//! (with `FunctionUrlAuthType NONE`) and `lambda:InvokeFunction` (with
//! `InvokedViaFunctionUrl`) granted to `*` (Lambda developer guide, "Control access to Lambda
//! function URLs"). The worker adds both statements, under its own statement ids, and removes
//! them with the URL or when the auth becomes `AWS_IAM`.
//!
//! Which alias carries a URL the worker made is kept in the function's tag [`TAG_URL`], so
//! dropping `[url]` (or `alias` with it) removes exactly that URL, and never one made by hand.

use std::collections::HashMap;

use aws_sdk_lambda::operation::delete_function_url_config::DeleteFunctionUrlConfigError;
use aws_sdk_lambda::operation::get_function_url_config::{GetFunctionUrlConfigError, GetFunctionUrlConfigOutput};
use aws_sdk_lambda::operation::get_policy::GetPolicyError;
use aws_sdk_lambda::operation::remove_permission::RemovePermissionError;
use aws_sdk_lambda::types::{Cors, FunctionUrlAuthType};

use crate::manifest::{FunctionSpec, UrlAuth, UrlSpec};
use crate::sdk_error::CallError;

/// Tag on the function: the alias whose URL the worker manages.
pub const TAG_URL: &str = "auto-lambda:url";
/// Statement id of the public `lambda:InvokeFunctionUrl` grant.
pub const STATEMENT_URL: &str = "auto-lambda-url-public";
/// Statement id of the public `lambda:InvokeFunction` grant (via the URL only).
pub const STATEMENT_INVOKE: &str = "auto-lambda-url-public-invoke";

/// Makes the function's URL what `spec.url` asks: returns the URL (`https://….lambda-url.
/// <region>.on.aws/`), or `None` when the manifest has no `[url]` (any URL the worker made
/// before is then deleted, with its permissions). `arn` is the function's unqualified ARN and
/// `tags` its tags as read before the deploy.
pub async fn reconcile(
    lambda: &aws_sdk_lambda::Client,
    spec: &FunctionSpec,
    arn: &str,
    tags: &HashMap<String, String>,
) -> Result<Option<String>, CallError> {
    let function = spec.name.as_str();
    let managed = tags.get(TAG_URL).cloned();
    let (Some(want), Some(alias)) = (&spec.url, &spec.alias) else {
        if let Some(qualifier) = managed {
            remove(lambda, function, &qualifier).await?;
            lambda
                .untag_resource()
                .resource(arn)
                .tag_keys(TAG_URL)
                .send()
                .await
                .map_err(|e| CallError::new(format!("untag {function}"), e))?;
        }
        return Ok(None);
    };
    if managed.as_deref().is_some_and(|q| q != alias) {
        // The URL moves to another alias: the old one goes.
        remove(lambda, function, managed.as_deref().unwrap_or_default()).await?;
    }
    if managed.as_deref() != Some(alias) {
        // Tagged first: a URL is never made without the record that lets it be removed.
        lambda
            .tag_resource()
            .resource(arn)
            .tags(TAG_URL, alias)
            .send()
            .await
            .map_err(|e| CallError::new(format!("tag {function}"), e))?;
    }
    let what = format!("{function}:{alias}");
    let auth = FunctionUrlAuthType::from(want.auth.as_str());
    let url = match get(lambda, function, alias).await? {
        None => {
            tracing::info!(function, alias, auth = want.auth.as_str(), "Creating the function URL.");
            lambda
                .create_function_url_config()
                .function_name(function)
                .qualifier(alias)
                .auth_type(auth)
                .set_cors(cors(want))
                .send()
                .await
                .map_err(|e| CallError::new(format!("create the function URL of {what}"), e))?
                .function_url
        }
        Some(current) if current.auth_type == auth && same_cors(current.cors.as_ref(), cors(want).as_ref()) => {
            current.function_url
        }
        Some(_) => {
            tracing::info!(function, alias, auth = want.auth.as_str(), "Updating the function URL.");
            lambda
                .update_function_url_config()
                .function_name(function)
                .qualifier(alias)
                .auth_type(auth)
                .cors(cors(want).unwrap_or_else(|| Cors::builder().build()))
                .send()
                .await
                .map_err(|e| CallError::new(format!("update the function URL of {what}"), e))?
                .function_url
        }
    };
    match want.auth {
        UrlAuth::None => allow_public(lambda, function, alias).await?,
        UrlAuth::AwsIam => revoke_public(lambda, function, alias).await?,
    }
    Ok(Some(url))
}

async fn get(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    qualifier: &str,
) -> Result<Option<GetFunctionUrlConfigOutput>, CallError> {
    match lambda
        .get_function_url_config()
        .function_name(function)
        .qualifier(qualifier)
        .send()
        .await
    {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error()
                .is_some_and(GetFunctionUrlConfigError::is_resource_not_found_exception) =>
        {
            Ok(None)
        }
        Err(e) => Err(CallError::new(
            format!("read the function URL of {function}:{qualifier}"),
            e,
        )),
    }
}

/// Deletes the URL on `qualifier` and the public grants; what is already gone is fine.
async fn remove(lambda: &aws_sdk_lambda::Client, function: &str, qualifier: &str) -> Result<(), CallError> {
    tracing::info!(function, alias = qualifier, "Removing the function URL.");
    match lambda
        .delete_function_url_config()
        .function_name(function)
        .qualifier(qualifier)
        .send()
        .await
    {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(DeleteFunctionUrlConfigError::is_resource_not_found_exception) => {}
        Err(e) => {
            return Err(CallError::new(
                format!("delete the function URL of {function}:{qualifier}"),
                e,
            ))
        }
    }
    revoke_public(lambda, function, qualifier).await
}

/// The statement ids in the resource-based policy of `function:qualifier` (none when it has no
/// policy).
async fn statement_ids(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    qualifier: &str,
) -> Result<Vec<String>, CallError> {
    let policy = match lambda
        .get_policy()
        .function_name(function)
        .qualifier(qualifier)
        .send()
        .await
    {
        Ok(out) => out.policy.unwrap_or_default(),
        Err(e)
            if e.as_service_error()
                .is_some_and(GetPolicyError::is_resource_not_found_exception) =>
        {
            return Ok(Vec::new())
        }
        Err(e) => return Err(CallError::new(format!("read the policy of {function}:{qualifier}"), e)),
    };
    let policy: serde_json::Value = serde_json::from_str(&policy).unwrap_or_default();
    Ok(policy["Statement"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["Sid"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Adds the public grants the policy lacks. A statement id taken meanwhile (AddPermission's
/// ResourceConflictException also means "another operation is in progress") is transient:
/// the job reads the policy again on its next attempt.
async fn allow_public(lambda: &aws_sdk_lambda::Client, function: &str, qualifier: &str) -> Result<(), CallError> {
    let have = statement_ids(lambda, function, qualifier).await?;
    let grants = [
        lambda
            .add_permission()
            .function_name(function)
            .qualifier(qualifier)
            .statement_id(STATEMENT_URL)
            .action("lambda:InvokeFunctionUrl")
            .principal("*")
            .function_url_auth_type(FunctionUrlAuthType::None),
        lambda
            .add_permission()
            .function_name(function)
            .qualifier(qualifier)
            .statement_id(STATEMENT_INVOKE)
            .action("lambda:InvokeFunction")
            .principal("*")
            .invoked_via_function_url(true),
    ];
    for grant in grants {
        if grant.get_statement_id().as_ref().is_some_and(|id| have.contains(id)) {
            continue;
        }
        grant
            .send()
            .await
            .map_err(|e| CallError::new(format!("allow public invoke of {function}:{qualifier}'s URL"), e))?;
    }
    Ok(())
}

/// Removes the public grants the worker made; ones already gone are fine.
async fn revoke_public(lambda: &aws_sdk_lambda::Client, function: &str, qualifier: &str) -> Result<(), CallError> {
    let have = statement_ids(lambda, function, qualifier).await?;
    for statement in [STATEMENT_URL, STATEMENT_INVOKE] {
        if !have.iter().any(|s| s == statement) {
            continue;
        }
        match lambda
            .remove_permission()
            .function_name(function)
            .qualifier(qualifier)
            .statement_id(statement)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(RemovePermissionError::is_resource_not_found_exception) => {}
            Err(e) => {
                return Err(CallError::new(
                    format!("remove public invoke of {function}:{qualifier}'s URL"),
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// The manifest's CORS settings, or `None` when it sets none.
fn cors(url: &UrlSpec) -> Option<Cors> {
    let empty = url.cors_origins.is_empty()
        && url.cors_methods.is_empty()
        && url.cors_headers.is_empty()
        && url.cors_expose_headers.is_empty()
        && url.cors_max_age.is_none()
        && url.cors_allow_credentials.is_none();
    if empty {
        return None;
    }
    let list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    Some(
        Cors::builder()
            .set_allow_origins(list(&url.cors_origins))
            .set_allow_methods(list(&url.cors_methods))
            .set_allow_headers(list(&url.cors_headers))
            .set_expose_headers(list(&url.cors_expose_headers))
            .set_max_age(url.cors_max_age)
            .set_allow_credentials(url.cors_allow_credentials)
            .build(),
    )
}

/// Lambda may echo an absent list as empty, and absent settings as defaults: compare what
/// each side sets.
fn same_cors(have: Option<&Cors>, want: Option<&Cors>) -> bool {
    let norm = |c: Option<&Cors>| {
        let c = c.cloned().unwrap_or_else(|| Cors::builder().build());
        (
            c.allow_origins().to_vec(),
            c.allow_methods().to_vec(),
            c.allow_headers().to_vec(),
            c.expose_headers().to_vec(),
            c.max_age().unwrap_or(0),
            c.allow_credentials().unwrap_or(false),
        )
    };
    norm(have) == norm(want)
}
