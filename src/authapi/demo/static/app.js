// The whole browser-mode protocol of authapi, without a library (the second factors
// are in factors.js and second-step.js).
// - POST /token and POST /refresh with `X-Token-Delivery: cookie`: the refresh token
//   travels only in an HttpOnly cookie; the access token stays in this variable.
// - The same header is the CSRF defence, so every cookie request sends it.
// - Refresh shortly before the access token expires, and once after a 401.
// - A page load refreshes only when this browser may hold a session: a flag in
//   localStorage, set at login and cleared at logout. It is no secret (the cookie is
//   the credential); it spares a signed-out visitor a refresh that can only fail.
// - Mailed links (AUTHAPI_APP_URL pointing here) open /demo/email/verify#token=… and
//   /demo/password/reset#token=…: the token is in the fragment, which no request sends.
//   The page takes it out of the address bar, and posts it only when the owner presses
//   the button, so a mail scanner that opens the link spends nothing.

import { installFactors } from "./factors.js";
import { $, refusal, say, submit, view } from "./page.js";
import { installSecondStep } from "./second-step.js";

const COOKIE_MODE = { "X-Token-Delivery": "cookie" };
const MAYBE_SIGNED_IN = "authapi-demo:maybe-signed-in";
let accessToken = null;
let refreshTimer = null;
let inFlight = null; // one refresh at a time in this tab
let refreshes = 0;
let loggedOut = false; // set by the logout button: no timer may sign this tab in again

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

async function api(path, init = {}) {
  const call = () => fetch(path, { ...init, headers: { ...init.headers, Authorization: `Bearer ${accessToken}` } });
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
  const profile = me.ok ? await me.json() : { email: claims.sub, email_verified: null };
  $("who").textContent = profile.email;
  $("email-verified").textContent = profile.email_verified ? "yes" : "no";
  $("resend-verification").hidden = profile.email_verified !== false;
  $("role").textContent = claims.role;
  $("claims").textContent = JSON.stringify(claims, null, 2);
  await factors.show(profile, claims);
}

function showLogin(message = {}) {
  accessToken = null;
  clearTimeout(refreshTimer);
  factors.clear();
  view("login-view");
  say(message);
}

async function showApp(message = {}) {
  await showClaims();
  view("app-view");
  say(message);
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

// POST /token in cookie mode: `{ response, payload }`, the response null when the server
// could not be reached.
async function requestTokens(params) {
  try {
    const response = await fetch("/token", {
      method: "POST", headers: COOKIE_MODE, body: new URLSearchParams(params), credentials: "same-origin",
    });
    return { response, payload: await response.json().catch(() => ({})) };
  } catch (error) {
    return { response: null, payload: {} };
  }
}

async function signIn(tokens) {
  loggedOut = false;
  localStorage.setItem(MAYBE_SIGNED_IN, "1");
  accept(tokens);
  $("password").value = "";
  await showApp();
}

const factors = installFactors({ api, changed: () => showClaims() });
const secondStep = installSecondStep({ requestTokens, signIn, showLogin: () => showLogin() });

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const { response, payload } = await requestTokens({
    grant_type: "password", username: $("email").value, password: $("password").value,
  });
  if (response?.status === 400 && payload.error === "mfa_required") {
    $("password").value = "";
    secondStep.begin(payload);
  } else if (!response?.ok) {
    showLogin({ error: await refusal(response, payload) });
  } else {
    await signIn(payload);
  }
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

$("resend-verification").addEventListener("click", async () => {
  const response = await api("/email/verification", { method: "POST" });
  if (response.ok) say({ status: "A new verification mail is on its way." });
  else say({ error: await refusal(response) });
});

$("forgot").addEventListener("click", () => {
  $("forgot-email").value = $("email").value;
  view("forgot-view");
  say();
});
$("back-to-login").addEventListener("click", () => showLogin());
$("forgot-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await submit(event.target, "/password/forgot", { email: $("forgot-email").value });
  if (response?.ok) {
    showLogin({ status: "If an account has this address, a link to reset its password is on its way." });
  } else {
    say({ error: await refusal(response) });
  }
});

// A mailed link's token: read from the fragment once, then out of the address bar (and
// so out of the history); it lives on only in this variable.
let linkToken = null;

function leaveLink() {
  linkToken = null;
  history.replaceState(null, "", "/demo/");
}

$("verify-view").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await submit(event.target, "/email/verify", { token: linkToken });
  if (!response?.ok) {
    say({ error: await refusal(response) });
    return;
  }
  leaveLink();
  const status = "Your email address is confirmed.";
  if (localStorage.getItem(MAYBE_SIGNED_IN)) {
    refresh().then(() => showApp({ status })).catch(() => showLogin({ status }));
  } else {
    showLogin({ status: `${status} You can log in.` });
  }
});

$("reset-view").addEventListener("submit", async (event) => {
  event.preventDefault();
  const password = $("new-password").value;
  const length = [...password].length; // as the server counts, not UTF-16 units
  if (length < 8 || length > 128) {
    say({ error: "The password must have 8 to 128 characters." });
    return;
  }
  if (password !== $("confirm-password").value) {
    say({ error: "The two passwords differ." });
    return;
  }
  const response = await submit(event.target, "/password/reset", {
    token: linkToken, new_password: password,
  });
  if (!response?.ok) {
    say({ error: await refusal(response) });
    return;
  }
  $("reset-view").reset();
  leaveLink();
  // Every session of the account has ended, this browser's too.
  localStorage.removeItem(MAYBE_SIGNED_IN);
  showLogin({ status: "Your password is changed. Log in with the new password." });
});

// For tests and the curious: the state of this tab, without the token itself.
window.authapiDemo = { refresh: silentRefresh, refreshes: () => refreshes, signedIn: () => accessToken !== null };

const LINK_VIEWS = { "/demo/email/verify": "verify-view", "/demo/password/reset": "reset-view" };
const linkView = LINK_VIEWS[location.pathname];

if (linkView) {
  linkToken = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname);
  if (linkToken) {
    view(linkView);
    say();
  } else {
    showLogin({ error: "This link is incomplete. Open the link from your mail again." });
  }
} else if (localStorage.getItem(MAYBE_SIGNED_IN)) {
  // A reload keeps the session: the cookie is still there, so refresh silently. Without
  // the flag there is no session to keep (never logged in here, or logged out).
  refresh().then(() => showApp()).catch(() => showLogin());
} else {
  showLogin();
}
