// Accounts: log in, sign up and verify, resend the verify mail, forgot/reset password, the profile.
import { ApiError, get, post, setToken } from "./api.js";
import { el, fail, field, form, go, optional, render, say, session } from "./ui.js";

const enc = encodeURIComponent;

export function codeFrom(text) {
  // A pasted link (…/signup/verify?code=…) or the bare code.
  const value = text.trim();
  try {
    return new URL(value).searchParams.get("code") || value;
  } catch {
    const match = value.match(/[?&]code=([^&\s]+)/);
    return match ? decodeURIComponent(match[1]) : value;
  }
}

async function resend(email) {
  const done = await optional(post("/api/accounts/signup/resend/", { email }));
  if (done === null) say("This server cannot send the mail again; sign up again with the same address instead.");
  else say(`If ${email} waits for verification, a new link is on its way.`, true);
}

function resendButton(emailOf) {
  const button = el("button", { type: "button", class: "link", id: "resend" }, "Resend the verification mail");
  button.addEventListener("click", async () => {
    const email = emailOf();
    if (!email) return say("Type your e-mail address first.");
    button.disabled = true;
    try { await resend(email); } catch (err) { fail(err); } finally { button.disabled = false; }
  });
  return button;
}

export function showLogin({ loadMe }) {
  const email = field("E-mail", "email", "email", { autocomplete: "username", required: true });
  const resendLine = el("p", { class: "muted", hidden: true }, "Not verified yet? ",
    resendButton(() => email.querySelector("input").value.trim()));
  render(form(
    "Log in",
    [email, field("Password", "password", "password", { autocomplete: "current-password", required: true })],
    "Log in",
    async ({ email: address, password }) => {
      try {
        const reply = await post("/api/accounts/login/", { email: address, password });
        setToken(reply.token);
      } catch (err) {
        if (err instanceof ApiError && /not verified/i.test(err.message)) resendLine.hidden = false;
        throw err;
      }
      await loadMe();
      go("#/");
    },
    el("p", { class: "muted" }, el("a", { href: "#/forgot" }, "Forgot password?")),
    resendLine,
    el("p", { class: "muted" }, "New to Videoflix? ", el("a", { href: "#/signup" }, "Sign up")),
  ));
}

export function verifyBox(email = "") {
  const address = email ? null : el("input", { type: "email", name: "resend_email", autocomplete: "username",
    "aria-label": "Your e-mail address", placeholder: "Your e-mail address" });
  return form(
    "Verify your address",
    [field("Link or code from the mail", "code", "text", { required: true })],
    "Verify",
    async ({ code }) => verifySignup(codeFrom(code)),
    el("div", { class: "resend-line" }, el("p", { class: "muted" }, "No mail? Look in the spam folder, or:"), address,
      resendButton(() => email || address.value.trim())),
  );
}

export function showSignup() {
  render(form(
    "Sign up",
    [field("E-mail", "email", "email", { autocomplete: "username", required: true }),
      field("Password", "password", "password", { autocomplete: "new-password", required: true }),
      field("First name", "first_name", "text", { autocomplete: "given-name" }),
      field("Last name", "last_name", "text", { autocomplete: "family-name" })],
    "Sign up",
    async (body) => {
      const reply = await post("/api/accounts/signup/", body);
      render(verifyBox(reply.email));
      say(`We sent a link to ${reply.email}. Open it, or paste it below.`, true);
    },
    el("p", { class: "muted" }, "Have an account? ", el("a", { href: "#/login" }, "Log in")),
  ));
}

export async function verifySignup(code) {
  try {
    await get(`/api/accounts/signup/verify/?code=${enc(code)}`);
    go("#/login", "Email address verified. You can log in now.", true);
  } catch (err) {
    render(verifyBox());
    fail(err);
  }
}

export function showForgot() {
  render(form(
    "Forgot your password?",
    [el("p", { class: "muted" }, "Type the address of your account; we mail you a link to choose a new password."),
      field("E-mail", "email", "email", { autocomplete: "username", required: true })],
    "Send the link",
    async ({ email }) => {
      const reply = await post("/api/accounts/password/reset/", { email });
      go("#/login", `If ${reply.email || email} has an account, a link to reset its password is on its way.`, true);
    },
    el("p", { class: "muted" }, el("a", { href: "#/login" }, "Back to log in")),
  ));
}

// The page the reset mail links to (/password/reset/verify?code=): the code is checked first, so a
// spent or old link says so before anyone types a password.
export async function showResetPassword(code) {
  try {
    await get(`/api/accounts/password/reset/verify/?code=${enc(code)}`);
  } catch (err) {
    render(el("div", { class: "card" }, el("h1", {}, "This link no longer works"),
      el("p", { class: "muted" }, "Reset links work once and for a limited time."),
      el("a", { class: "button", href: "#/forgot" }, "Ask for a new link")));
    fail(err);
    return;
  }
  render(form(
    "Choose a new password",
    [field("New password", "password", "password", { autocomplete: "new-password", required: true })],
    "Save password",
    async ({ password }) => {
      await post("/api/accounts/password/reset/verified/", { code, password });
      setToken(null);
      session.me = null;
      go("#/login", "Password reset. Log in with the new one.", true);
    },
  ));
}

export async function verifyEmailChange(code, loadMe) {
  try {
    const reply = await get(`/api/accounts/email/change/verify/?code=${enc(code)}`);
    await loadMe();
    go(session.me ? "#/profile" : "#/login", reply.success, true);
  } catch (err) {
    go(session.me ? "#/profile" : "#/login", err.message);
  }
}

export function showProfile({ loadMe }) {
  const me = session.me;
  const name = [me.first_name, me.last_name].filter(Boolean).join(" ");
  render(el("section", { class: "profile", id: "profile" },
    el("h1", { class: "page-title" }, "Your account"),
    el("dl", { class: "facts" },
      el("dt", {}, "Name"), el("dd", {}, name || "—"),
      el("dt", {}, "E-mail"), el("dd", { id: "profile-email" }, me.email),
      el("dt", {}, "Role"), el("dd", {}, me.is_staff ? "Staff" : "Viewer")),
    el("div", { class: "cards-2" },
      form("Change password",
        [el("input", { type: "text", name: "username", autocomplete: "username", value: me.email, hidden: true, "aria-hidden": "true" }),
          field("New password", "password", "password", { autocomplete: "new-password", required: true }),
          field("Repeat the new password", "again", "password", { autocomplete: "new-password", required: true })],
        "Change password",
        async ({ password, again }, node) => {
          if (password !== again) throw new Error("The two passwords differ.");
          const reply = await post("/api/accounts/password/change/", { password });
          node.reset();
          say(`${reply.success} Other devices are logged out.`, true);
        }),
      form("Change e-mail",
        [field("New e-mail", "email", "email", { autocomplete: "email", required: true })],
        "Send a confirmation link",
        async ({ email }, node) => {
          const reply = await post("/api/accounts/email/change/", { email });
          node.reset();
          await loadMe();
          say(`We sent a link to ${reply.email}. The address changes once you open it.`, true);
        }))));
}
