// A weft filter written with Extism's Rust PDK (crates.io's extism-pdk) and nothing of weft's:
// the PDK's own API for config, variables and logs, `#[host_fn]` for the weft host functions
// whose arguments are all blocks, and plain externs for the two whose arguments or results are
// not (docs/filter-abi.md, docs/filter-pdks.md).
//
// On each request it refuses paths under `denyPathPrefix` with 403, counts the requests it let
// through in an Extism variable, and tags the request and its response with `x-filter`.
use extism_pdk::*;

// The manifest weft reads (docs/filter-abi.md "Manifest"), embedded without the weft SDK: a
// static placed in a custom section of that name. `weft filter build` would append it; here
// rustc does, from manifest.json.
#[link_section = "weft.manifest"]
#[used]
static MANIFEST: [u8; include_bytes!("../manifest.json").len()] = *include_bytes!("../manifest.json");

// weft's host functions whose arguments and result are all blocks: the PDK's host_fn moves
// strings into blocks and back for us.
#[host_fn]
extern "ExtismHost" {
    fn weft_set(name: String, value: String);
    fn weft_add(name: String, value: String);
    fn weft_headers() -> String;
}

// The others: host_fn turns every argument into a block and every result into a value read
// from a block, so an i32 status cannot go through it, and neither can "0, no block" (absent
// header) be told from an empty value. These are declared as the ABI gives them.
#[link(wasm_import_module = "extism:host/user")]
extern "C" {
    fn weft_get(name: u64) -> u64;
    fn weft_respond(status: i32, headers: u64, body: u64);
}

/// A header, pseudo-header or attribute of the current message; None when it is absent.
fn get(name: &str) -> Result<Option<String>, Error> {
    let name = Memory::from_bytes(name)?;
    let offset = unsafe { weft_get(name.offset()) };
    name.free();
    if offset == 0 {
        return Ok(None);
    }
    // A block the host made for us: weft and the Extism kernel give its length.
    let value = Memory::find(offset).map(|m| {
        let text = m.to_string();
        m.free();
        text
    });
    Ok(value.transpose()?)
}

fn respond(status: i32, headers: &str, body: &str) -> Result<(), Error> {
    let headers = Memory::from_bytes(headers)?;
    let body = Memory::from_bytes(body)?;
    unsafe { weft_respond(status, headers.offset(), body.offset()) };
    headers.free();
    body.free();
    Ok(())
}

fn tag() -> Result<String, Error> {
    Ok(config::get("tag")?.unwrap_or_else(|| "rust-pdk".to_string()))
}

#[plugin_fn]
pub fn on_request_headers() -> FnResult<()> {
    let path = get(":path")?.unwrap_or_default();
    if let Some(prefix) = config::get("denyPathPrefix")? {
        if path.starts_with(&prefix) {
            info!("refusing {path}: under {prefix}");
            respond(403, "content-type: text/plain\nx-filter: rust-pdk\n", &format!("{path} is not served here\n"))?;
            return Ok(());
        }
    }
    // Never set in the samples, so this never runs; it is here because a module that merely
    // links extism_pdk::http imports http_request, http_status_code and http_headers, which
    // weft must accept at load (and trap on http_request, as a filter has no network).
    if let Some(url) = config::get("probeUrl")? {
        let response = http::request::<()>(&HttpRequest::new(url), None)?;
        unsafe { weft_set(String::from("x-probe-status"), response.status_code().to_string())? };
    }
    let seen = var::get::<String>("seen")?.and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) + 1;
    var::set("seen", seen.to_string())?;
    unsafe {
        weft_set(String::from("x-filter"), tag()?)?;
        weft_set(String::from("x-seen"), seen.to_string())?;
        // weft_headers: every header, one "name: value" line each; the filter reports how many.
        let lines = weft_headers()?.lines().count();
        weft_add(String::from("x-header-lines"), lines.to_string())?;
    }
    if let Some(agent) = get("user-agent")? {
        debug!("request from {agent}");
    }
    Ok(())
}

#[plugin_fn]
pub fn on_response_headers() -> FnResult<()> {
    let status = get(":status")?.unwrap_or_default();
    unsafe {
        weft_set(String::from("x-filter"), tag()?)?;
        weft_set(String::from("x-upstream-status"), status)?;
    }
    Ok(())
}
