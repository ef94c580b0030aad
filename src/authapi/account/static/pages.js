"use strict";
// The pages that mailed links open (account/pages.py). The link carries its token in
// the fragment, which no request ever sends: the page's GET is the same for everyone
// and uses nothing up. Only the POST below, once the owner presses the button, does; so
// a mail scanner that opens the link, even one that runs scripts, spends no token.
// The POST goes to the page's own path: each page sits where its POST endpoint is.

(() => {
  const MIN_PASSWORD = 8;
  const MAX_PASSWORD = 128;
  const $ = (id) => document.getElementById(id);
  const form = document.querySelector("form");
  const outcome = $("outcome");

  // Out of the address bar (and so out of the history and any bookmark) at once; the
  // token lives on only in this variable.
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname);

  function show(text, kind) {
    outcome.textContent = text;
    outcome.className = kind;
    outcome.hidden = false;
  }

  function codePoints(text) {
    return [...text].length; // as the server counts, not UTF-16 units
  }

  async function refusal(response) {
    if (response.status === 429) {
      const seconds = response.headers.get("Retry-After");
      return `Too many attempts. Try again in ${seconds || "a few"} seconds.`;
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 400 && body.error === "invalid_token") {
      return "This link is invalid, already used or expired. Ask for a new one.";
    }
    if (response.status < 500 && body.error_description) {
      return `Refused: ${body.error_description}`;
    }
    return `Something went wrong (HTTP ${response.status}). Try again later.`;
  }

  async function post(body, success) {
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      const response = await fetch(location.pathname, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
        credentials: "omit",
      });
      if (response.ok) {
        form.reset();
        form.hidden = true;
        show(success, "success");
      } else {
        show(await refusal(response), "failure");
      }
    } catch (error) {
      show("The server could not be reached. Try again.", "failure");
    } finally {
      button.disabled = false;
    }
  }

  if (!token) {
    show("This link is incomplete. Open the link from your mail again.", "failure");
    return;
  }
  form.hidden = false;

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (form.id === "verify-email") {
      post({ token }, "Your email address is confirmed. You can close this page.");
      return;
    }
    const password = $("new-password").value;
    if (codePoints(password) < MIN_PASSWORD || codePoints(password) > MAX_PASSWORD) {
      show(`The password must have ${MIN_PASSWORD} to ${MAX_PASSWORD} characters.`, "failure");
      return;
    }
    if (password !== $("confirm-password").value) {
      show("The two passwords differ.", "failure");
      return;
    }
    post(
      { token, new_password: password },
      "Your password is changed, and every session was signed out. Log in with the new password.",
    );
  });
})();
