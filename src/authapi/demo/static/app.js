"use strict";
// The whole browser-mode protocol of authapi, without a library.
// - POST /token and POST /refresh with `X-Token-Delivery: cookie`: the refresh token
//   travels only in an HttpOnly cookie; the access token stays in this variable.
// - The same header is the CSRF defence, so every cookie request sends it.
// - Refresh shortly before the access token expires, and once after a 401.
// - A page load refreshes only when this browser may hold a session: a flag in
//   localStorage, set at login and cleared at logout. It is no secret (the cookie is
//   the credential); it spares a signed-out visitor a refresh that can only fail.

const COOKIE_MODE = { "X-Token-Delivery": "cookie" };
const MAYBE_SIGNED_IN = "authapi-demo:maybe-signed-in";
let accessToken = null;
let refreshTimer = null;
let inFlight = null; // one refresh at a time in this tab
let refreshes = 0;
let loggedOut = false; // set by the logout button: no timer may sign this tab in again

const $ = (id) => document.getElementById(id);

function accept(tokens) {
  accessToken = tokens.access_token;
  clearTimeout(refreshTimer);
  // Refresh when a fifth of the lifetime is left (at most 30 s before expiry).
  const lead = Math.min(30, tokens.expires_in / 5);
  refreshTimer = setTimeout(silentRefresh, (tokens.expires_in - lead) * 1000);
}

function refresh() {
  if (!inFlight) {
    inFlight = fetch("/refresh", { method: "POST", headers: COOKIE_MODE, credentials: "same-origin" })
      .then(async (response) => {
        if (!response.ok) {
          localStorage.removeItem(MAYBE_SIGNED_IN);
          throw new Error("session ended");
        }
        accept(await response.json());
        refreshes += 1;
        $("refreshes").textContent = String(refreshes);
      })
      .finally(() => { inFlight = null; });
  }
  return inFlight;
}

async function api(path) {
  const call = () => fetch(path, { headers: { Authorization: `Bearer ${accessToken}` } });
  let response = await call();
  if (response.status === 401) {
    await refresh();
    response = await call();
  }
  return response;
}

async function showClaims() {
  const response = await api("/whoami");
  if (!response.ok) throw new Error(`whoami: ${response.status}`);
  const claims = await response.json();
  const me = await api("/users/me");
  $("who").textContent = me.ok ? (await me.json()).email : claims.sub;
  $("role").textContent = claims.role;
  $("claims").textContent = JSON.stringify(claims, null, 2);
}

// `error` is for what went wrong (shown as an alert), `status` for plain news.
function showLogin({ error = "", status = "" } = {}) {
  accessToken = null;
  clearTimeout(refreshTimer);
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("error").textContent = error;
  $("status").textContent = status;
}

async function showApp() {
  await showClaims();
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("error").textContent = "";
  $("status").textContent = "";
}

async function silentRefresh() {
  if (loggedOut) return;
  try {
    await refresh();
    await showClaims();
  } catch (error) {
    showLogin({ error: "Your session has ended; please log in again." });
  }
}

$("login-view").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = new URLSearchParams({
    grant_type: "password", username: $("email").value, password: $("password").value,
  });
  const response = await fetch("/token", {
    method: "POST", headers: COOKIE_MODE, body, credentials: "same-origin",
  });
  const payload = await response.json();
  if (!response.ok) {
    showLogin({ error: payload.error_description });
    return;
  }
  loggedOut = false;
  localStorage.setItem(MAYBE_SIGNED_IN, "1");
  accept(payload);
  $("password").value = "";
  await showApp();
});

$("refresh").addEventListener("click", silentRefresh);
$("reload-claims").addEventListener("click", () => showClaims().catch((e) => showLogin({ error: e.message })));
$("logout").addEventListener("click", async () => {
  loggedOut = true;
  localStorage.removeItem(MAYBE_SIGNED_IN);
  clearTimeout(refreshTimer);
  accessToken = null;
  // A refresh under way could otherwise set the cookie again after the logout.
  if (inFlight) await inFlight.catch(() => {});
  await fetch("/logout", { method: "POST", headers: COOKIE_MODE, credentials: "same-origin" });
  showLogin({ status: "Logged out." });
});

// For tests and the curious: the state of this tab, without the token itself.
window.authapiDemo = { refresh: silentRefresh, refreshes: () => refreshes, signedIn: () => accessToken !== null };

// A reload keeps the session: the cookie is still there, so refresh silently. Without
// the flag there is no session to keep (never logged in here, or logged out).
if (localStorage.getItem(MAYBE_SIGNED_IN)) {
  refresh().then(showApp).catch(() => showLogin());
} else {
  showLogin();
}
