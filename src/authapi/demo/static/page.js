// What every part of the demo shows with: its views, its two message lines, and how
// a refusal reads to the person at the keyboard.

export const $ = (id) => document.getElementById(id);

const VIEWS = ["login-view", "second-step-view", "forgot-view", "app-view", "verify-view", "reset-view"];

export function view(name) {
  for (const id of VIEWS) $(id).hidden = id !== name;
}

// `error` is for what went wrong (shown as an alert), `status` for plain news.
export function say({ error = "", status = "" } = {}) {
  $("error").textContent = error;
  $("status").textContent = status;
}

// What a refusal means to the person at the keyboard. `body`: when the caller has
// read it already.
export async function refusal(response, body = undefined) {
  if (!response) return "The server could not be reached. Try again.";
  if (response.status === 429) {
    return `Too many attempts. Try again in ${response.headers.get("Retry-After") || "a few"} seconds.`;
  }
  body ??= await response.json().catch(() => ({}));
  if (response.status === 400 && body.error === "invalid_token") {
    return "This link is invalid, already used or expired. Ask for a new one.";
  }
  return body.error_description || `Something went wrong (HTTP ${response.status}).`;
}

// One request per press: the buttons stay disabled until the answer is in. Null when
// the server could not be reached (or `work` failed before it).
export async function pressed(buttons, work) {
  for (const button of buttons) button.disabled = true;
  try {
    return await work();
  } catch (error) {
    return null;
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

// The `init` of a fetch that posts `body` as JSON.
export const postJSON = (body) => ({
  method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
});

export function submit(form, path, body) {
  return pressed([form.querySelector("button[type=submit]")], () => fetch(path, postJSON(body)));
}
