// The "Second factors" panel of a signed-in user: turning TOTP on (the password asked
// again, the QR code and secret, a first code, the recovery codes shown once), adding a
// passkey, the list of passkeys. The secret and the codes live only in the page, and
// leave it when they have served (confirmed, kept) or at logout.

import { $, postJSON, pressed, refusal, say } from "./page.js";
import { ceremony, messageOf, newPasskey, Refused } from "./webauthn.js";

// `api(path, init)`: a fetch with the access token. `changed()`: shows the profile again
// (mfa_enabled) after a factor was added.
export function installFactors({ api, changed }) {
  function forgetEnrolment() {
    $("totp-qr").removeAttribute("src");
    $("totp-secret").textContent = "";
    $("totp-uri").textContent = "";
    $("totp-confirm-form").reset();
    $("totp-confirm-form").hidden = true;
    $("totp-start-form").hidden = false;
  }

  function forgetRecoveryCodes() {
    $("recovery-codes").replaceChildren();
    $("recovery").hidden = true;
  }

  async function listPasskeys() {
    const response = await api("/users/me/passkeys");
    // 404: this server has passkeys off (its RP ID would be an IP address).
    $("passkey-form").hidden = response.status === 404;
    if (!response.ok) {
      $("passkeys").replaceChildren();
      return;
    }
    const items = (await response.json()).map((passkey) => {
      const item = document.createElement("li");
      const kind = passkey.backup_eligible ? "synced" : "on one device";
      item.textContent = `${passkey.name} (${kind}, added ${passkey.created_at.slice(0, 10)})`;
      return item;
    });
    $("passkeys").replaceChildren(...items);
  }

  $("totp-start-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { current_password: $("totp-password").value };
    const response = await pressed([$("totp-start")], () => api("/users/me/mfa/totp", postJSON(body)));
    $("totp-password").value = "";
    if (!response?.ok) {
      say({ error: await refusal(response) });
      return;
    }
    const enrolment = await response.json();
    // An <img>, not markup: an SVG image runs no script, and the policy allows data: images.
    $("totp-qr").src = `data:image/svg+xml;base64,${btoa(enrolment.qr_svg)}`;
    $("totp-secret").textContent = enrolment.secret;
    $("totp-uri").textContent = enrolment.otpauth_uri;
    $("totp-start-form").hidden = true;
    $("totp-confirm-form").hidden = false;
    $("totp-code").focus();
    say({ status: "Add the account to your authenticator app, then type the code it shows." });
  });

  $("totp-confirm-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { code: $("totp-code").value };
    const response = await pressed([$("totp-confirm")], () => api("/users/me/mfa/totp/confirm", postJSON(body)));
    if (!response?.ok) {
      say({ error: await refusal(response) });
      return;
    }
    const { recovery_codes: codes } = await response.json();
    forgetEnrolment();
    $("recovery-codes").replaceChildren(...codes.map((code) => {
      const item = document.createElement("li");
      item.textContent = code;
      return item;
    }));
    $("recovery").hidden = false;
    say({ status: "TOTP is on: from now on, logging in asks for a code too." });
    await changed();
  });

  $("recovery-done").addEventListener("click", () => {
    forgetRecoveryCodes();
    say();
  });

  $("passkey-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = $("passkey-name").value.trim();
    const button = $("passkey-add");
    button.disabled = true;
    try {
      const credential = await ceremony(() => api("/users/me/passkeys/options", { method: "POST" }), newPasskey);
      const response = await api("/users/me/passkeys", postJSON(name ? { credential, name } : { credential }));
      if (!response.ok) throw new Refused(await refusal(response));
      const passkey = await response.json();
      $("passkey-form").reset();
      say({ status: `Passkey "${passkey.name}" added: you can log in with it.` });
      await changed();
    } catch (error) {
      say({ error: messageOf(error) });
    } finally {
      button.disabled = false;
    }
  });

  return {
    // What the panel shows of a profile (/users/me) and of the access token's claims.
    async show(profile, claims) {
      $("mfa-enabled").textContent = profile.mfa_enabled ? "yes" : "no";
      $("amr").textContent = (claims.amr || []).join(", ");
      await listPasskeys();
    },
    clear() {
      forgetEnrolment();
      forgetRecoveryCodes();
      $("totp-start-form").reset();
      $("passkey-form").reset();
      $("passkeys").replaceChildren();
    },
  };
}
