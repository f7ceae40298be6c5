"""The one declared schema of every setting, and the layers that fill it.

Layers, lowest first: the schema's defaults < ``config.yaml`` < environment variables < command-line
flags. Every setting has a default and a line of help here; ``config.yaml`` repeats them with comments
for deployers (a test keeps the two in step).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

log = logging.getLogger("videoflix.config")


# The origin of the seed front-end's Angular dev server: allowed to call the API when FRONTEND_URL is unset.
DEV_FRONTEND_ORIGIN = "http://localhost:4200"


class ConfigError(Exception):
    """A setting is missing, unknown or of the wrong type; the message is one sentence naming it."""


class Section(BaseModel):
    """A block of settings: unknown keys are refused so that typos never pass silently."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ServerSettings(Section):
    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="Port to listen on (0 picks a free one).")
    debug: bool = Field(True, description="Debug mode: allows a random SECRET_KEY; never shows tracebacks.")
    secret_key: str | None = Field(
        None, description="Signs codes and stream grants; required when debug is off."
    )
    frontend_url: str | None = Field(
        None,
        description="Base URL of the front-end: links in mails start with it and its origin may call the "
        "API. Unset: links point at this server's own web app (public_url, or the address it listens "
        "on) and the Angular dev server's origin, http://localhost:4200, may call the API.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Further origins allowed to call the API (env CORS_ORIGINS: comma-separated).",
    )
    public_url: str | None = Field(
        None,
        description="The API's URL as clients reach it (e.g. https://api.example.com): every URL in the "
        "JSON starts with it (env PUBLIC_URL); unset, stream URLs are relative to the API.",
    )
    log_format: Literal["plain", "json"] = Field(
        "plain", description="Log lines as plain text or one JSON object each (env LOG_FORMAT)."
    )

    @field_validator("cors_origins", mode="before")
    @classmethod
    def comma_separated(cls, value: Any) -> Any:
        """CORS_ORIGINS=a,b from the environment is a list of origins."""
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Proxy addresses whose X-Forwarded-For is believed for the client address, so that "
        "rate limits key on the client, not on the proxy (env TRUSTED_PROXIES: comma-separated).",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def addresses(cls, value: Any) -> Any:
        """TRUSTED_PROXIES=a,b from the environment is a list; each entry is an IP address (the peer
        address is compared with it: a host name would never match)."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_address(str(entry))
                except ValueError as err:
                    raise ValueError(f"{entry!r} is not an IP address") from err
        return value

    role: Literal["all", "api", "transcode"] = Field(
        "all",
        description="all: API and transcoding; api: serves HTTP and queues jobs; transcode: runs "
        "transcodes and serves only health (any number of each on one MongoDB).",
    )
    shutdown_grace_s: float = Field(
        10.0, ge=0, description="Seconds to let open requests finish at shutdown."
    )
    idle_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds a connection may wait before or while sending a request's headers (an idle "
        "keep-alive included), and the longest pause inside an upload's body; then it is closed.",
    )
    body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Seconds to receive a whole request body other than an upload (those are at most "
        "1 MiB); uploads have no total limit, only the idle one.",
    )


class DatabaseSettings(Section):
    uri: str = Field(
        "memory://", description="MongoDB URI; memory:// is an in-process database forgotten on exit."
    )
    name: str = Field("videoflix", description="Database name when the URI names none.")
    connect_timeout_s: float = Field(
        5.0, gt=0, description="Seconds to wait for MongoDB at start before giving up."
    )


class EmailSettings(Section):
    backend: Literal["console", "smtp"] = Field(
        "console", description="console prints mails to the log; smtp sends them."
    )
    host: str = Field("localhost", description="SMTP host.")
    port: int = Field(25, ge=1, le=65535, description="SMTP port.")
    user: str = Field("", description="SMTP user name (empty: no login).")
    password: str = Field("", description="SMTP password.")
    use_tls: bool = Field(False, description="STARTTLS after connecting (port 587 style).")
    use_ssl: bool = Field(False, description="Implicit TLS from the first byte (port 465 style).")
    from_address: str = Field("Videoflix <noreply@videoflix.local>", description="From: header.")
    timeout_s: float = Field(10.0, gt=0, description="SMTP timeout per attempt.")
    max_attempts: int = Field(8, ge=1, description="Attempts before a mail is marked failed.")
    retry_base_s: float = Field(5.0, gt=0, description="First retry delay; doubles each attempt.")
    concurrency: int = Field(4, ge=1, description="Mails this process sends at once.")


RATE = r"^[1-9][0-9]*/[1-9][0-9]*$"  # COUNT/SECONDS


class AccountSettings(Section):
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost factor.")
    password_min_length: int = Field(8, ge=1, description="Shortest password accepted.")
    token_lifetime_s: int | None = Field(
        None, ge=1, description="Seconds a login token lives; null: until logout."
    )
    verify_code_max_age_s: int = Field(
        3 * 24 * 3600, ge=1, description="Seconds a signup or e-mail change code stays valid."
    )
    reset_code_max_age_s: int = Field(3600, ge=1, description="Seconds a password reset code stays valid.")
    signup_verify_path: str = Field("/signup/verify", description="Front-end path the signup mail links to.")
    password_reset_verify_path: str = Field(
        "/password/reset/verify", description="Front-end path the reset mail links to."
    )
    email_change_verify_path: str = Field(
        "/email/change/verify", description="Front-end path the e-mail change mail links to."
    )
    rate_limit_login: str = Field("10/60", pattern=RATE, description="Login attempts allowed: COUNT/SECONDS.")
    rate_limit_signup: str = Field("5/3600", pattern=RATE, description="Signups allowed: COUNT/SECONDS.")
    rate_limit_password_reset: str = Field(
        "5/3600", pattern=RATE, description="Password reset requests allowed: COUNT/SECONDS."
    )
    rate_limit_signup_resend: str = Field(
        "3/3600", pattern=RATE, description="Verify mails sent again allowed: COUNT/SECONDS."
    )


class MediaSettings(Section):
    root: str | None = Field(
        None,
        description="Folder for uploads and HLS output (relative: to server.py); none: `media` beside "
        "server.py, or with the in-memory database a temporary folder removed at exit.",
    )
    max_upload_mb: int = Field(4096, ge=1, description="Largest upload accepted, in MiB.")
    min_free_mb: int = Field(
        256, ge=0, description="Free space MEDIA_ROOT keeps beyond an upload; less answers 507."
    )
    upload_expiry_h: float = Field(
        24, gt=0, description="Hours a resumable (tus) upload may sit unfinished before it expires."
    )
    max_open_uploads: int = Field(
        10,
        ge=1,
        description="Unfinished resumable (tus) uploads one staff user may have at once; their declared "
        "lengths are reserved against the free space.",
    )
    max_duration_s: float = Field(
        4 * 3600, gt=0, description="Longest source accepted, in seconds, as the probe reads it."
    )
    max_pixels: int = Field(
        7680 * 4320, ge=64 * 64, description="Largest picture a source may have, in pixels (width x height)."
    )
    max_fps: float = Field(240, gt=0, description="Highest frame rate a source may have.")
    probe_memory_mb: int = Field(
        1024,
        ge=16,
        description="Address space the probe of an upload may use, in MiB (Python and PyAV take ~125).",
    )
    probe_timeout_s: float = Field(30.0, gt=0, description="Seconds the probe of an upload may take.")
    max_subtitle_kb: int = Field(
        1024, ge=1, le=64 * 1024, description="Largest subtitle file (SRT or WebVTT) accepted, in KiB."
    )
    max_chapters: int = Field(500, ge=1, le=10_000, description="Most chapters a video may have.")
    grant_max_age_s: int = Field(
        6 * 3600, ge=60, description="Seconds a stream URL (its signed grant) stays valid."
    )
    accel_redirect: str | None = Field(
        None, description="nginx internal location for MEDIA_ROOT: the server answers X-Accel-Redirect."
    )
    storage: Literal["local", "s3"] = Field(
        "local", description="Where media lives: local (MEDIA_ROOT on disk) or s3 (the s3 section)."
    )
    edge: Literal["none", "nginx", "s3"] = Field(
        "none",
        description="Who checks URLs below the master playlist: none (this server, per-user grants), "
        "nginx (secure_link tokens, local storage) or s3 (presigned URLs).",
    )
    edge_base_url: str = Field(
        "/media", description="Base URL of the edge's media location (nginx secure_link), e.g. /media."
    )
    edge_secret: str | None = Field(
        None, description="The secret nginx's secure_link_md5 shares with this server (edge: nginx)."
    )
    edge_window_s: int = Field(
        600,
        ge=60,
        le=24 * 3600,
        description="Edge URLs are the same for everyone within a window of this many seconds and stay "
        "valid for one more; a deactivated user keeps issued URLs that long.",
    )
    sweep_grace_s: int = Field(
        6 * 3600,
        ge=60,
        description="On MongoDB with local storage, leftovers (unfinished ladders and uploads, folders no "
        "video references) untouched this long are removed at start and hourly.",
    )


class S3Settings(Section):
    bucket: str | None = Field(None, description="Bucket holding every media object (media.storage: s3).")
    endpoint_url: str | None = Field(
        None, description="S3 endpoint, e.g. http://minio:9000; null: AWS S3 of the region."
    )
    public_url: str | None = Field(
        None,
        description="The store's URL as viewers reach it, for presigned URLs (it must pass the Host header "
        "on unchanged); null: endpoint_url.",
    )
    region: str = Field("us-east-1", description="Region the requests are signed for.")
    access_key_id: str | None = Field(None, description="Access key; null: the usual AWS credential chain.")
    secret_access_key: str | None = Field(None, description="Secret key belonging to the access key.")
    part_size_mb: int = Field(
        8, ge=5, le=512, description="Multipart part size in MiB: the memory an upload holds at most."
    )
    concurrency: int = Field(8, ge=1, le=64, description="Objects a ladder upload sends at once.")
    max_attempts: int = Field(4, ge=1, description="Attempts per object of a ladder upload.")
    retry_base_s: float = Field(0.5, gt=0, description="First retry delay of a ladder upload; doubles.")
    connect_timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for a connection to the store.")
    read_timeout_s: float = Field(60.0, gt=0, description="Seconds to wait for the store's answer.")


class CatalogueSettings(Section):
    cache_ttl_s: float = Field(
        2.0, ge=0, description="Seconds the users' video lists are cached (0: no cache)."
    )
    max_page_size: int = Field(100, ge=1, description="Largest ?limit= a list answers.")
    playable_while_processing: Literal["staff", "everyone"] = Field(
        "staff",
        description="Who sees and plays a video whose ladder is still being made (its first segments "
        "are ready): staff only, or every user.",
    )


class LadderRungSettings(Section):
    height: int = Field(ge=72, le=4320, description="Rung height; a source gets those up to its own.")
    max_kbps: int = Field(gt=0, description="Peak video bitrate cap, kbit/s (never above 1.3x the source's).")
    level: str = Field(pattern=r"^[1-6]\.[0-2]$", description="H.264 level; raised if size x fps needs more.")
    enabled: bool = Field(True, description="Whether sources get this rung.")


DEFAULT_LADDER = [
    LadderRungSettings(height=120, max_kbps=250, level="3.0"),
    LadderRungSettings(height=360, max_kbps=900, level="3.0"),
    LadderRungSettings(height=720, max_kbps=3000, level="3.1"),
    LadderRungSettings(height=1080, max_kbps=6000, level="4.0"),
    LadderRungSettings(height=1440, max_kbps=12000, level="5.1", enabled=False),
    LadderRungSettings(height=2160, max_kbps=20000, level="5.1", enabled=False),
]


class TranscodeSettings(Section):
    workers: int | None = Field(
        None, ge=1, description="Transcoding processes; null: one per two cores, at least one."
    )
    ffmpeg: str | None = Field(
        None, description="FFmpeg binary; null: the one the pinned imageio-ffmpeg ships."
    )
    preset: str = Field("veryfast", description="x264 preset.")
    crf: int = Field(23, ge=0, le=51, description="x264 constant rate factor (lower: better, larger).")
    segment_s: int = Field(4, ge=1, le=30, description="HLS segment length; keyframes fall on its multiples.")
    audio_bitrate_k: int = Field(128, ge=32, le=512, description="AAC bitrate, kbit/s.")
    loudness_lufs: float = Field(
        -16.0, ge=-31, le=-5, description="Integrated loudness (EBU R128, LUFS) of every audio rendition."
    )
    nice: int = Field(10, ge=0, le=19, description="FFmpeg's CPU niceness, so the API stays responsive.")
    max_attempts: int = Field(3, ge=1, description="Attempts before a video is marked failed.")
    retry_base_s: float = Field(30.0, gt=0, description="First retry delay; doubles each attempt.")
    timeout_base_s: float = Field(120.0, gt=0, description="FFmpeg timeout: this much ...")
    timeout_factor: float = Field(10.0, ge=0, description="... plus this many times the source's duration.")
    stall_s: float = Field(
        120.0, gt=0, description="FFmpeg is stopped once it has encoded nothing new for this many seconds."
    )
    progress_interval_s: float = Field(
        0.5, gt=0, description="Least time between two progress writes of one video."
    )
    storyboard: bool = Field(
        True, description="Make the trick-play storyboard (sprite sheets and their WebVTT) in the same pass."
    )
    av1: Literal["off", "after", "popular"] = Field(
        "after",
        description="AV1 rungs beside the H.264 ones, by a follow-up job: off; after every CMAF ladder; "
        "or popular, once a video passes av1_min_views views in 7 days.",
    )
    av1_preset: int = Field(10, ge=0, le=13, description="SVT-AV1 preset of the AV1 rungs.")

    @field_validator("av1", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        """`av1: off` unquoted is YAML 1.1's false: it means off."""
        return "off" if value is False else value

    av1_crf: int = Field(44, ge=1, le=63, description="SVT-AV1 CRF of the AV1 rungs (capped like H.264).")
    av1_min_views: int = Field(
        100, ge=1, description="With av1: popular, views in 7 days after which a video gets AV1 rungs."
    )
    target_vmaf: float | None = Field(
        93.0,
        ge=0,
        le=100,
        description="Per-title CRF: the top rung's VMAF a short probe aims each title's CRF at (the rungs "
        "below use it too, never above 30; the rung caps stay the ceiling); 0 or null: the fixed `crf` "
        "for every title.",
    )
    per_title_min_s: float = Field(
        300.0,
        ge=0,
        description="Probe only sources at least this long: the probe costs about the same whatever the "
        "length, and delays the first playable segments by that much.",
    )
    ladder: list[LadderRungSettings] = Field(
        default_factory=lambda: [rung.model_copy() for rung in DEFAULT_LADDER],
        min_length=1,
        description="The HLS ladder: one row per rung, its bitrate cap and H.264 level.",
    )


class PublishSettings(Section):
    max_attempts: int = Field(
        8, ge=1, description="Attempts to publish an encoded ladder before the video is marked failed."
    )
    retry_base_s: float = Field(
        5.0, gt=0, description="First retry delay of a publish (the store was down); doubles each attempt."
    )


class JobSettings(Section):
    poll_interval_s: float = Field(
        2.0, gt=0, description="How often the queue looks for due jobs (new jobs wake it at once)."
    )
    lease_s: float = Field(
        60.0, gt=0, description="A running job's lease; another process takes it over once it runs out."
    )
    backoff_cap_s: float = Field(3600.0, gt=0, description="Longest delay between two attempts of a job.")
    jitter: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Retry delays vary by up to this share, so failures do not march in step.",
    )
    keep_done_days: float = Field(7.0, gt=0, description="Days finished jobs are kept for staff to see.")
    node: str | None = Field(
        None,
        description="This process's stable name among job runners (default: host:port); after a restart "
        "it takes its own stale jobs back at once.",
    )


class AdminSettings(Section):
    email: str | None = Field(None, description="At start, a verified staff user with this e-mail exists.")
    password: str | None = Field(None, description="Password for that user when it is created.")


class MetricsSettings(Section):
    token: str | None = Field(
        None,
        description="Bearer token that GET /metrics on the main port asks for (unset: not served there).",
    )
    port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="A port of its own serving /metrics (on server.host; token optional).",
    )
    interval_s: float = Field(
        15.0, gt=0, description="Seconds between samples of the job queue's depth and the database's ping."
    )


class AnalyticsSettings(Section):
    raw_events_days: float = Field(
        7.0, gt=0, description="Days raw playback events are kept (a TTL index); aggregates stay."
    )
    max_body_kb: int = Field(128, ge=1, le=1024, description="Largest playback report body, in KiB.")
    rate_limit_playback: str = Field(
        "60/60", pattern=RATE, description="Playback reports allowed per user: COUNT/SECONDS."
    )
    view_min_s: float = Field(30.0, gt=0, description="Seconds watched that count a view ...")
    view_min_share: float = Field(
        0.5, gt=0, le=1, description="... or this share of the video watched, whichever comes first."
    )
    popular_cache_s: float = Field(
        30.0, ge=0, description="Seconds the views-in-7-days ranking (?ordering=popular) is cached."
    )


class Settings(Section):
    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    email: EmailSettings = Field(default_factory=EmailSettings)
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    media: MediaSettings = Field(default_factory=MediaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    catalogue: CatalogueSettings = Field(default_factory=CatalogueSettings)
    transcode: TranscodeSettings = Field(default_factory=TranscodeSettings)
    publish: PublishSettings = Field(default_factory=PublishSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)

    @model_validator(mode="after")
    def _admin_needs_both(self) -> Settings:
        if bool(self.admin.email) != bool(self.admin.password):
            raise ValueError("ADMIN_EMAIL and ADMIN_PASSWORD go together: set both or neither")
        return self

    @model_validator(mode="after")
    def _roles_share_a_database(self) -> Settings:
        if self.server.role != "all" and self.database.uri == "memory://":
            raise ValueError(
                f"ROLE={self.server.role} works with other processes through a shared MongoDB, which the "
                "in-memory database cannot be: set MONGODB_URI, or use ROLE=all"
            )
        return self

    @model_validator(mode="after")
    def _storage_and_edge_fit(self) -> Settings:
        media = self.media
        if media.storage == "s3" and not self.s3.bucket:
            raise ValueError("MEDIA_STORAGE=s3 needs a bucket: set S3_BUCKET")
        if media.storage == "s3" and media.edge != "s3":
            raise ValueError(
                "MEDIA_STORAGE=s3 keeps no files this server could send: set MEDIA_EDGE=s3 (presigned URLs)"
            )
        if media.edge == "nginx" and media.storage != "local":
            raise ValueError("MEDIA_EDGE=nginx serves MEDIA_ROOT from disk: use it with MEDIA_STORAGE=local")
        if media.edge == "nginx" and not media.edge_secret:
            raise ValueError("MEDIA_EDGE=nginx needs the secret nginx checks tokens with: set EDGE_SECRET")
        if media.edge == "s3" and media.storage != "s3":
            raise ValueError("MEDIA_EDGE=s3 presigns object URLs: use it with MEDIA_STORAGE=s3")
        if media.edge == "s3" and not (self.s3.access_key_id and self.s3.secret_access_key):
            raise ValueError(
                "MEDIA_EDGE=s3 presigns URLs with the access keys: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY"
            )
        return self


# The environment names deployers know from the seed, and the setting each one fills.
ENVIRONMENT: dict[str, tuple[str, str]] = {
    "SECRET_KEY": ("server", "secret_key"),
    "DEBUG": ("server", "debug"),
    "HOST": ("server", "host"),
    "PORT": ("server", "port"),
    "ROLE": ("server", "role"),
    "FRONTEND_URL": ("server", "frontend_url"),
    "CORS_ORIGINS": ("server", "cors_origins"),
    "LOG_FORMAT": ("server", "log_format"),
    "PUBLIC_URL": ("server", "public_url"),
    "TRUSTED_PROXIES": ("server", "trusted_proxies"),
    "MONGODB_URI": ("database", "uri"),
    "EMAIL_BACKEND": ("email", "backend"),
    "EMAIL_HOST": ("email", "host"),
    "EMAIL_PORT": ("email", "port"),
    "EMAIL_HOST_USER": ("email", "user"),
    "EMAIL_HOST_PASSWORD": ("email", "password"),
    "EMAIL_USE_TLS": ("email", "use_tls"),
    "EMAIL_USE_SSL": ("email", "use_ssl"),
    "DEFAULT_FROM_EMAIL": ("email", "from_address"),
    "MEDIA_ROOT": ("media", "root"),
    "MAX_UPLOAD_MB": ("media", "max_upload_mb"),
    "MEDIA_STORAGE": ("media", "storage"),
    "MEDIA_EDGE": ("media", "edge"),
    "EDGE_BASE_URL": ("media", "edge_base_url"),
    "EDGE_SECRET": ("media", "edge_secret"),
    "S3_BUCKET": ("s3", "bucket"),
    "S3_ENDPOINT_URL": ("s3", "endpoint_url"),
    "S3_PUBLIC_URL": ("s3", "public_url"),
    "S3_REGION": ("s3", "region"),
    "AWS_ACCESS_KEY_ID": ("s3", "access_key_id"),
    "AWS_SECRET_ACCESS_KEY": ("s3", "secret_access_key"),
    "TRANSCODE_WORKERS": ("transcode", "workers"),
    "ADMIN_EMAIL": ("admin", "email"),
    "ADMIN_PASSWORD": ("admin", "password"),
    "METRICS_TOKEN": ("metrics", "token"),
    "METRICS_PORT": ("metrics", "port"),
}


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a config file; a missing file is an empty layer, a broken one a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    return data


def environment_layer(environ: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Turn the contract's environment variables into a nested layer; empty values count as unset."""
    layer: dict[str, dict[str, Any]] = {}
    for name, (section, key) in ENVIRONMENT.items():
        value = environ.get(name)
        if value is not None and value != "":
            layer.setdefault(section, {})[key] = value
    return layer


def merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay one layer on another, section by section."""
    merged = dict(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def describe(err: ValidationError) -> str:
    """One sentence naming the first offending key."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown setting '{where}'"
    if not where:
        return first["msg"].removeprefix("Value error, ")
    return f"setting '{where}': {first['msg'].removeprefix('Value error, ')} (got {first['input']!r})"


def load_settings(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build the settings from every layer and validate them; raise ConfigError with one sentence."""
    layers = read_yaml(path) if path else {}
    layers = merge(layers, environment_layer(os.environ if environ is None else environ))
    layers = merge(layers, overrides or {})
    try:
        settings = Settings.model_validate(layers)
    except ValidationError as err:
        raise ConfigError(describe(err)) from err
    return ensure_secret_key(settings)


def ensure_secret_key(settings: Settings) -> Settings:
    """Refuse to run without SECRET_KEY unless in debug mode, where a random one is made (and said so)."""
    if settings.server.secret_key:
        return settings
    if not settings.server.debug:
        raise ConfigError("setting 'server.secret_key' (SECRET_KEY) is required when DEBUG is off")
    log.warning("SECRET_KEY is not set: using a random key, so every token, code and grant dies on restart")
    settings.server.secret_key = secrets.token_urlsafe(48)
    return settings
