// WebAuthn as authapi speaks it: the server's options are the JSON forms that
// PublicKeyCredential.parse…FromJSON() read, and it takes back the credential's JSON
// (`JSON.stringify(credential.toJSON())`) as a string.

import { refusal } from "./page.js";

// A failure with the message the page shows for it.
export class Refused extends Error {}

export async function newPasskey(options) {
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options);
  return JSON.stringify((await navigator.credentials.create({ publicKey })).toJSON());
}

export async function passkeyAssertion(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return JSON.stringify((await navigator.credentials.get({ publicKey })).toJSON());
}

// The browser's own messages are for developers.
function failure(error) {
  if (error?.name === "NotAllowedError") return "No passkey was used: the request was cancelled or timed out.";
  if (error?.name === "InvalidStateError") return "This device holds a passkey of this account already.";
  return `The browser could not use a passkey (${error?.name || error}).`;
}

// One ceremony: ask for options (`optionsRequest()`, a fetch), run `run` on them (newPasskey
// or passkeyAssertion). The credential's JSON, or a Refused.
export async function ceremony(optionsRequest, run) {
  const response = await optionsRequest().catch(() => null);
  if (!response?.ok) throw new Refused(await refusal(response));
  const options = await response.json();
  try {
    return await run(options);
  } catch (error) {
    throw new Refused(failure(error));
  }
}

// What to show for an error of a passkey flow: a Refused says it; anything else is a
// request that never got through.
export const messageOf = (error) =>
  error instanceof Refused ? error.message : "The server could not be reached. Try again.";
