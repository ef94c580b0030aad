// Logging in with a second factor: the step after a password grant answered 400
// `mfa_required` (a code, TOTP or recovery, or a passkey of the account), and the login
// with a passkey alone. The mfa_token lives in this module only, until it is used or
// the step abandoned.

import { $, postJSON, pressed, refusal, say, view } from "./page.js";
import { ceremony, messageOf, passkeyAssertion } from "./webauthn.js";

const MFA_GRANT = "urn:authapi:params:oauth:grant-type:mfa";
const PASSKEY_GRANT = "urn:authapi:params:oauth:grant-type:passkey";

// `requestTokens(params)`: POST /token in cookie mode, `{ response, payload }`.
// `signIn(payload)`: a token response accepted. `showLogin()`: back to the password form.
export function installSecondStep({ requestTokens, signIn, showLogin }) {
  let mfaToken = null;

  // A grant's answer: signed in, or the refusal shown (the step stays, for another try).
  async function conclude({ response, payload }) {
    if (!response?.ok) {
      say({ error: await refusal(response, payload) });
      return;
    }
    mfaToken = null;
    $("second-step-form").reset();
    await signIn(payload);
  }

  $("second-step-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const params = { grant_type: MFA_GRANT, mfa_token: mfaToken, otp: $("second-step-code").value };
    await conclude((await pressed([$("second-step-submit")], () => requestTokens(params))) ?? {});
  });

  $("second-step-passkey").addEventListener("click", async () => {
    const buttons = [$("second-step-passkey"), $("second-step-submit")];
    for (const button of buttons) button.disabled = true;
    try {
      const options = () => fetch("/passkeys/options", postJSON({ mfa_token: mfaToken }));
      const credential = await ceremony(options, passkeyAssertion);
      await conclude(await requestTokens({ grant_type: MFA_GRANT, mfa_token: mfaToken, credential }));
    } catch (error) {
      say({ error: messageOf(error) });
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  });

  $("second-step-cancel").addEventListener("click", () => {
    mfaToken = null;
    $("second-step-form").reset();
    showLogin();
  });

  // No password: the authenticator offers the passkeys it holds for this site.
  $("passkey-login").addEventListener("click", async () => {
    const button = $("passkey-login");
    button.disabled = true;
    try {
      const credential = await ceremony(() => fetch("/passkeys/options", postJSON({})), passkeyAssertion);
      await conclude(await requestTokens({ grant_type: PASSKEY_GRANT, credential }));
    } catch (error) {
      say({ error: messageOf(error) });
    } finally {
      button.disabled = false;
    }
  });

  return {
    // The password was right: `payload` is the 400 mfa_required body.
    begin(payload) {
      mfaToken = payload.mfa_token;
      const methods = payload.mfa_methods || [];
      $("second-step-form").hidden = !methods.some((method) => method === "totp" || method === "recovery_code");
      $("second-step-passkey").hidden = !methods.includes("passkey");
      view("second-step-view");
      say();
      if (!$("second-step-form").hidden) $("second-step-code").focus();
    },
  };
}
