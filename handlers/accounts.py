"""Accounts under /api/accounts/: the django-rest-authemail contract, path for path."""

from __future__ import annotations

from typing import Annotated, Any

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email
from pydantic import AfterValidator, Field

from core.errors import Unauthenticated
from core.validation import Body, Query, min_length_from
from handlers.base import APIError, BaseHandler, public, user_only
from handlers.openapi import api
from handlers.replies import Detail, EmailReply, SignupReply, Success, TokenReply, User, VerifiedReply
from services.accounts import AccountService


def valid_email(value: str) -> str:
    """An e-mail address as given (trimmed), if it is well-formed."""
    value = value.strip()
    try:
        validate_email(value, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError("Enter a valid email address.") from err
    return value


def special_use_domains() -> str:
    """A pattern of the addresses whose domain email_validator refuses as special-use (RFC 6761: .test,
    .localhost and the like), in any case: JSON-schema patterns have no flags."""
    names = ["".join(f"[{c}{c.upper()}]" if c.isalpha() else c for c in n) for n in SPECIAL_USE_DOMAIN_NAMES]
    return rf"\.(?:{'|'.join(names)})\.?$"


# What valid_email accepts, declared: an e-mail address, and none at a special-use domain.
EMAIL_SCHEMA = {"format": "email", "not": {"pattern": special_use_domains()}}
Email = Annotated[str, Field(max_length=254, json_schema_extra=EMAIL_SCHEMA), AfterValidator(valid_email)]
Name = Annotated[str, Field(max_length=150)]
# accounts.password_min_length, which the document shows as the password's minLength
Password = min_length_from("password_min_length")


RESENT = "If this address is waiting to be verified, a new link is on its way."


class PasswordBody(Body):
    password: Password


class SignupBody(PasswordBody):
    email: Email
    first_name: Name = ""
    last_name: Name = ""


class LoginBody(Body):
    email: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1)]


class EmailBody(Body):
    email: Email


class ResetVerifiedBody(PasswordBody):
    code: Annotated[str, Field(min_length=1)]


class CodeQuery(Query):
    code: str = Field(min_length=1, description="The code from the mailed link.")


class AccountHandler(BaseHandler):
    """Shared by the account handlers: the service and rate limits."""

    @property
    def accounts(self) -> AccountService:
        return self.services.accounts

    async def throttled_body(self, model: type[Body], scope: str, spec: str) -> Any:
        """The validated body of a rate-limited route: the client address is counted, and refused with
        429, before the body is parsed (a malformed body counts too); then the body's e-mail."""
        await self.services.throttle.check(scope, spec, [f"ip:{self.client_ip()}"])
        body = self.parse(model)
        await self.services.throttle.check(scope, spec, [f"email:{body.email.strip().lower()}"])
        return body

    def code_param(self) -> str:
        """The ?code= of a verify link. The document declares it required and non-empty; a missing or
        empty one goes on to be refused as any wrong code is, in the contract's one sentence."""
        try:
            return self.query(CodeQuery).code
        except APIError:
            return ""


class SignupHandler(AccountHandler):
    @api("Sign up; mails a verify link", body=SignupBody, responses={201: SignupReply}, throttled=True)
    @public
    async def post(self) -> None:
        body = await self.throttled_body(SignupBody, "signup", self.config.accounts.rate_limit_signup)
        user, token = await self.accounts.signup(body.email, body.password, body.first_name, body.last_name)
        self.send_json(
            {"email": user.email, "first_name": user.first_name, "last_name": user.last_name, "token": token},
            status=201,
        )


class SignupVerifyHandler(AccountHandler):
    @api("Verify a signup with the mailed code", query=CodeQuery, responses={200: VerifiedReply})
    @public
    async def get(self) -> None:
        token = await self.accounts.verify_signup(self.code_param())
        self.send_json({"success": "Email address verified.", "token": token})


class SignupResendHandler(AccountHandler):
    @api(
        "Mail the verify link again (the same answer whether or not the address is known or verified)",
        body=EmailBody,
        responses={200: Detail},
        throttled=True,
    )
    @public
    async def post(self) -> None:
        limit = self.config.accounts.rate_limit_signup_resend
        body = await self.throttled_body(EmailBody, "signup-resend", limit)
        await self.accounts.resend_signup(body.email)
        self.send_json({"detail": RESENT})


class LoginHandler(AccountHandler):
    @api("Log in: a token", body=LoginBody, responses={200: TokenReply}, errors=[401], throttled=True)
    @public
    async def post(self) -> None:
        body = await self.throttled_body(LoginBody, "login", self.config.accounts.rate_limit_login)
        self.send_json({"token": await self.accounts.login(body.email, body.password)})


class LogoutHandler(AccountHandler):
    @api("Log out: every token and stream grant of the user revoked", responses={200: Success})
    @user_only
    async def get(self) -> None:
        await self.accounts.logout(self.user)
        self.send_json({"success": "User logged out."})

    post = get


class PasswordResetHandler(AccountHandler):
    @api(
        "Ask for a password reset mail (201 whether or not the address is known)",
        body=EmailBody,
        responses={201: EmailReply},
        throttled=True,
    )
    @public
    async def post(self) -> None:
        limit = self.config.accounts.rate_limit_password_reset
        body = await self.throttled_body(EmailBody, "password-reset", limit)
        await self.accounts.request_password_reset(body.email)
        self.send_json({"email": body.email}, status=201)


class PasswordResetVerifyHandler(AccountHandler):
    @api("Check a password reset code", query=CodeQuery, responses={200: Success})
    @public
    async def get(self) -> None:
        await self.accounts.check_reset_code(self.code_param())
        self.send_json({"success": "Email address verified."})


class PasswordResetVerifiedHandler(AccountHandler):
    @api("Set a new password with a reset code", body=ResetVerifiedBody, responses={200: Success})
    @public
    async def post(self) -> None:
        body = self.parse(ResetVerifiedBody)
        await self.accounts.reset_password(body.code, body.password)
        self.send_json({"success": "Password reset."})


class PasswordChangeHandler(AccountHandler):
    @api(
        "Change the password; other tokens and every stream grant revoked",
        body=PasswordBody,
        responses={200: Success},
    )
    @user_only
    async def post(self) -> None:
        body = self.parse(PasswordBody)
        if self.token is None:  # prepare found the user by it
            raise Unauthenticated()
        await self.accounts.change_password(self.user, body.password, self.token)
        self.send_json({"success": "Password changed."})


class EmailChangeHandler(AccountHandler):
    @api("Ask to change the e-mail address; mails a code", body=EmailBody, responses={201: EmailReply})
    @user_only
    async def post(self) -> None:
        body = self.parse(EmailBody)
        await self.accounts.request_email_change(self.user, body.email)
        self.send_json({"email": body.email}, status=201)


class EmailChangeVerifyHandler(AccountHandler):
    @api("Confirm an e-mail change with the mailed code", query=CodeQuery, responses={200: Success})
    @public
    async def get(self) -> None:
        await self.accounts.confirm_email_change(self.code_param())
        self.send_json({"success": "Email address changed."})


class MeHandler(AccountHandler):
    @api("The caller's account", responses={200: User})
    @user_only
    def get(self) -> None:
        self.send_json(self.user.to_api())


routes = [
    (r"/api/accounts/signup/?", SignupHandler),
    (r"/api/accounts/signup/verify/?", SignupVerifyHandler),
    (r"/api/accounts/signup/resend/?", SignupResendHandler),
    (r"/api/accounts/login/?", LoginHandler),
    (r"/api/accounts/logout/?", LogoutHandler),
    (r"/api/accounts/password/reset/?", PasswordResetHandler),
    (r"/api/accounts/password/reset/verify/?", PasswordResetVerifyHandler),
    (r"/api/accounts/password/reset/verified/?", PasswordResetVerifiedHandler),
    (r"/api/accounts/password/change/?", PasswordChangeHandler),
    (r"/api/accounts/email/change/?", EmailChangeHandler),
    (r"/api/accounts/email/change/verify/?", EmailChangeVerifyHandler),
    (r"/api/accounts/users/me/?", MeHandler),
]
