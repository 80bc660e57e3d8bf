# This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
# distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
"""The one place where Hygie's settings and policy numbers live.

Every setting can be given as an environment variable prefixed with ``HYGIE_`` (for example
``HYGIE_DATA_DIR``). Policy numbers are stated here once and read everywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AdmissionLimits(BaseModel):
    """How much of one class of routes the portal takes on at once (see hygie.portal.resilience)."""

    concurrency: int = Field(ge=1, description="Requests of this class handled at the same time.")
    queue: int = Field(ge=0, description="Requests that may wait for a slot; beyond them, an immediate 503.")
    wait_seconds: float = Field(gt=0, description="Longest wait in the queue before a 503 (a queue deadline).")
    deadline_seconds: float = Field(gt=0, description="Longest time to answer once admitted before a 503.")
    retry_after_seconds: int = Field(ge=1, description="What a refused client is told to wait (Retry-After).")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HYGIE_", extra="ignore")

    data_dir: Path = Field(default=Path("./hygie-data"), description="Where the hub keeps everything.")
    key_passphrase: SecretStr | None = Field(
        default=None, description="Passphrase from which the keystore master key is derived (Argon2id)."
    )
    key_file: Path | None = Field(
        default=None,
        description="A 32-byte master key file (mode 0600), kept apart from the data dir. "
        "Used instead of the passphrase when set.",
    )
    backup_passphrase: SecretStr | None = Field(
        default=None,
        description="Passphrase from which `hygie backup` derives each archive's key (Argon2id, fresh salt per "
        "backup). Kept apart from the key passphrase and the machine, so a backup restores after losing both.",
    )
    key_backend: str = Field(
        default="local",
        description="Key custody backend: 'local' (keystore in the data dir, sealed by the master key) or 'pkcs11' "
        "(an HSM: the master KEK never leaves the token).",
    )
    pkcs11_module: Path = Field(
        default=Path("/usr/lib/softhsm/libsofthsm2.so"), description="The PKCS#11 library of the HSM (pkcs11 backend)."
    )
    pkcs11_token_label: str = Field(default="hygie", description="Label of the HSM token holding Hygie's KEK.")
    pkcs11_pin: SecretStr | None = Field(
        default=None, description="User PIN of the token (environment only; never a command-line argument)."
    )
    pkcs11_pin_file: Path | None = Field(
        default=None, description="A 0600 file holding the token's user PIN, used when HYGIE_PKCS11_PIN is unset."
    )
    pkcs11_bulk_mac_min: int = Field(
        default=20_000,
        ge=1,
        description="Batches of at least this many HMACs (ingestion) run in process memory with the pseudonym key "
        "read out of the token; smaller batches are computed inside the token.",
    )
    pkcs11_bulk_key_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Longest time a pseudonym key read out of the token for a bulk batch stays in process memory.",
    )
    pkcs11_rotation_batch: int = Field(
        default=500, ge=1, description="Keys re-wrapped between two saves of the keystore during a KEK rotation."
    )
    pseudonym_rotation_grace_seconds: float = Field(
        default=120.0,
        ge=0.0,
        description="After a hub pseudonym rotation's switch, the old warehouse files stay this long for reads that "
        "listed them just before it, then are removed.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata database; SQLite in the data dir when unset.",
    )

    # Policy numbers.
    disclosure_threshold: int = Field(default=11, description="Platform minimum people per released cell.")
    ingest_max_errors: int = Field(
        default=200,
        description="Errors reported per batch before the report is cut (the batch is rejected anyway).",
    )
    ingest_chunk_rows: int = Field(default=500_000, description="Rows read and checked at a time per file.")
    ingest_max_delay_months: int = Field(
        default=27, description="Longest accepted delay between care and its arrival in a flow."
    )
    earliest_plausible_date: str = Field(
        default="1890-01-01",
        description="Dates before this are refused (except the 1600-01-01 missing code).",
    )

    # Governance policy.
    reviewers_required: int = Field(default=2, description="Distinct reviewers who must approve a project.")
    dpo_may_review: bool = Field(
        default=False,
        description="Whether the DPO's approval counts towards a project's reviews. Off: the DPO oversees, "
        "reviewers decide (hygie.governance.policy.reviewing_roles).",
    )
    project_max_days: int = Field(default=1095, description="Longest duration a project may ask for (3 years).")
    annual_review_days: int = Field(
        default=365, description="Projects longer than this need a recorded review every such period."
    )
    max_potential_identifiers: int = Field(
        default=1, description="Potential identifiers (exact dates, commune, birth month...) per project."
    )
    dp_population_budget: float = Field(
        default=1.0,
        gt=0,
        allow_inf_nan=False,
        description="Privacy budget of one population and purpose, shared by every differential-privacy project "
        "over it (hygie.governance.privacy; unit of hygie.disclosure.dp); also the most one project may ask for.",
    )
    opt_out_exempt_purposes: list[str] = Field(
        default_factory=list,
        description="Purposes (from hygie.governance.policy.Purpose) whose views keep opted-out citizens. "
        "Empty by default; changing it is a governance decision.",
    )
    opt_out_margin_seconds: float = Field(
        default=600.0,
        ge=60.0,
        description="Objections recorded this long before a view build started count as applied by that build; "
        "later ones are excluded from every query of the view (at once, with no rebuild). Must exceed the "
        "longest time between recording an objection and committing it.",
    )

    audit_checkpoint_seconds: float = Field(
        default=2.0, description="A signed checkpoint of the audit log at least this often while events flow."
    )
    audit_read_commit_wait_seconds: float = Field(
        default=10.0,
        gt=0,
        description="Longest a citizen read waits for the group commit of its audit event; past it the read is "
        "answered 503 (never without its event durable).",
    )
    citizen_memo_entries: int = Field(
        default=100_000,
        ge=0,
        description="Citizens' hub pseudonyms and person keys, and batches' unwrapped extract keys, kept in each "
        "server process's memory (derivations that never change for a key version: a hit saves a vault decryption "
        "or a custody call; 0: none).",
    )
    citizen_memo_seconds: float = Field(
        default=600.0,
        gt=0,
        description="How long such a derivation is kept before it is computed again (a key version destroyed in "
        "custody stops being usable from memory after this).",
    )
    audit_witnesses: list[str] = Field(
        default=[],
        description="Outside witnesses of the audit log (C2SP tlog-witness), each '<submission URL prefix> "
        "<cosigner verifier key>'; every new checkpoint is sent to each (POST <prefix>/add-checkpoint).",
    )
    audit_witness_quorum: int = Field(
        default=1, ge=1, description="A checkpoint counts as cosigned once this many configured witnesses signed it."
    )
    audit_witness_timeout_seconds: float = Field(
        default=5.0, gt=0, description="How long the witnessing thread waits for one witness's answer."
    )
    audit_witness_retry_seconds: float = Field(
        default=30.0, gt=0, description="How often a witness that could not be reached is asked again."
    )
    alert_seconds: float = Field(default=30.0, description="How often DPO access alerts are evaluated.")
    alert_fresh_approver_days: int = Field(
        default=7, ge=0, description="An approval by an account younger than this many days raises an alert."
    )
    project_sweep_seconds: float = Field(
        default=60.0, description="How often the server ends projects past their term (access stops at expiry anyway)."
    )
    citizen_index_merge_waiting: int = Field(
        default=8,
        ge=1,
        description="Accepted batches, or view generations, waiting in the citizen index's recent tables that start "
        "a merge into its person-first tables: each waiting one costs a citizen's read one more point lookup, each "
        "merge rewrites the person-first tables once (docs/benchmarks.md).",
    )
    citizen_index_merge_seconds: float = Field(
        default=300.0, gt=0, description="How often the server checks whether the citizen index has a merge due."
    )
    serve_background_tasks: bool = Field(
        default=True,
        description="`hygie serve` also runs the audit checkpointer (and witnesses), the DPO alerts and the project "
        "sweep. Off when one `hygie background` runs them for a hub served by several processes (docs/operations.md).",
    )

    # Dummy data (hygie.analysis.dummy): a synthetic dataset with each project's view schema, before approval.
    dummy_people: int = Field(
        default=3_000,
        ge=100,
        description="People in the synthetic population over which every project's dummy view is built.",
    )
    dummy_seed: int = Field(
        default=2_024,
        ge=0,
        description="Seed of the dummy populations (with the years covered): same settings, same synthetic people.",
    )

    # Analyses (hygie/analysis): sandbox limits of one run, the airlock, and disclosure control of outputs.
    analysis_memory_limit_mb: int = Field(
        default=2048, description="DuckDB memory limit of one analysis run (per project connection), in MB."
    )
    analysis_threads: int = Field(default=2, description="DuckDB threads of one analysis run.")
    analysis_view_cache_mb: int | None = Field(
        default=None,
        ge=0,
        description="Decrypted project views kept in this process's memory (never on disk) between runs, in MB; "
        "a view larger than this is read from its encrypted files on every run; 0 turns the cache off; unset: a "
        "quarter of the machine's memory (hygie/warehouse/viewcache.py).",
    )
    analysis_view_cache_idle_seconds: float = Field(
        default=900.0,
        gt=0,
        description="A decrypted view nobody read for this long is dropped from memory.",
    )
    # Apache Spark (hygie/warehouse/spark.py, docs/spark.md): the distributed engine of a national deployment.
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="Engine of aggregates and view builds: 'duckdb' (embedded) or 'spark'."
    )
    spark_master: str = Field(
        default="local[2]", description="Spark master URL: local[N], or spark://host:7077 for a standalone cluster."
    )
    spark_shuffle_partitions: int = Field(
        default=4, ge=1, description="spark.sql.shuffle.partitions (national scale: about 2 per executor core)."
    )
    spark_driver_memory_mb: int = Field(default=1024, ge=256, description="Heap of the Spark driver JVM, in MB.")
    spark_executor_memory_mb: int = Field(default=1024, ge=256, description="Heap of each Spark executor, in MB.")
    spark_ui: bool = Field(default=False, description="Serve the Spark web UI (off: nothing listens but custody).")
    spark_event_log_dir: Path | None = Field(
        default=None, description="Directory of Spark's event log (spark.eventLog.enabled); None: no event log."
    )
    spark_auth_secret_file: Path | None = Field(
        default=None,
        description="File (0600) holding the secret a standalone cluster's master, workers and driver share: RPC "
        "then authenticated and encrypted (spark.authenticate, spark.network.crypto.enabled). None: local mode only.",
    )
    spark_custody_host: str = Field(
        default="127.0.0.1",
        description="Address the custody channel of Spark's KMS client listens on (loopback: executors on this "
        "machine only; see docs/spark.md for executors on other nodes).",
    )
    analysis_timeout_seconds: float = Field(
        default=120.0, description="Wall-clock limit of one analysis run; the query is interrupted past it."
    )
    analysis_max_output_rows: int = Field(
        default=10_000, description="SQL outputs with more rows are refused as extracts (aggregates: max_cells)."
    )
    analysis_row_level_fraction: float = Field(
        default=0.5,
        gt=0,
        description="A SQL output with at least this many rows per person of the view (and 2 rows or more) is "
        "refused as row-level, before any checker sees it: about one row per person (docs/disclosure.md).",
    )
    analysis_checkers_required: int = Field(
        default=2, description="Distinct independent output checkers who must approve a release in the airlock."
    )
    analysis_workers: int = Field(
        default=2,
        ge=0,
        description="Analysis runs executing at once per server process (worker threads claiming jobs from the "
        "hub's queue in the database); the others wait queued.",
    )
    analysis_queue_limit: int = Field(
        default=50,
        description="Most analyses queued or running on the hub, all server processes together; a submission "
        "beyond it is refused (409).",
    )
    analysis_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often an idle worker looks for jobs other server processes accepted (a process's own "
        "submissions wake its workers at once).",
    )
    analysis_recovery_seconds: float = Field(
        default=60.0,
        gt=0,
        description="On PostgreSQL, how often a server process fails the jobs of a process that died while checking "
        "or running them (also done when a process starts).",
    )
    analysis_visible_quantum_seconds: float = Field(
        default=5.0,
        ge=0,
        description="A finished analysis shows as finished to its project only at the next multiple of this many "
        "seconds after its submission (its run time is data-dependent); 0 shows it at once.",
    )
    disclosure_max_cells: int = Field(
        default=10_000, description="Most cells in one released output: the full grid of its listed codes."
    )
    disclosure_rounding_base: int = Field(
        default=5,
        description="People counts are randomly rounded to this base, magnitudes to this many typical per-person "
        "contributions (times disclosure_magnitude_noise), from the cell's anchor.",
    )
    disclosure_protection_width: int | None = Field(
        default=None, description="Narrowest interval left on a suppressed cell; None means the threshold."
    )
    disclosure_dominance_p: float | None = Field(default=10.0, description="p of the p% dominance rule; None: off.")
    disclosure_magnitude_noise: float = Field(
        default=1.0,
        description="Rounding step of event counts, sums, means and quantiles, in multiples of rounding_base typical "
        "per-person contributions (0: released unrounded, with no differencing bound).",
    )
    ledger_max_contributions: int = Field(
        default=5_000_000,
        description="Most (cell, person) memberships of one aggregate the release ledger records and compares; "
        "beyond it the output goes to the airlock with a finding (it cannot be checked against earlier releases).",
    )
    lpaudit_max_atoms: int = Field(
        default=20_000,
        description="Most groups of people (by the set of released cells holding them, over all of a project's "
        "releases) in the linear-programming audit; beyond it the output goes to the airlock with a finding.",
    )
    lpaudit_max_cells: int = Field(
        default=20_000,
        description="Most cells (all of a project's releases) the linear-programming audit constrains; beyond it "
        "the output goes to the airlock with a finding.",
    )
    lpaudit_max_targets: int = Field(
        default=400,
        description="Most small suppressed cells (two linear programs each) the audit bounds before a release; "
        "beyond it the output goes to the airlock with a finding.",
    )
    # Differential privacy (hygie.disclosure.dp), for projects approved with release_mode 'dp'. One privacy
    # definition: zero-concentrated DP (zCDP, Bun & Steinke 2016), budgets and costs counted in rho. Why zCDP and not
    # pure epsilon: releases are vectors of cells (histograms) and many of them per project; Gaussian noise calibrated
    # to the L2 sensitivity gives far less error than Laplace for the same protection, and zCDP composes by adding
    # rho, which is exactly what a ledger can count (sum of costs <= budget). rho converts to (epsilon, delta)-DP for
    # any delta: epsilon = rho + 2 * sqrt(rho * ln(1 / delta)) (docs/disclosure.md).
    dp_rho_per_statistic: float = Field(
        default=0.01,
        gt=0,
        allow_inf_nan=False,
        description="zCDP cost (rho) of one released statistic: one measure (people, events, a sum, a mean) over "
        "the request's whole grid of cells. A request costs this times its measures (margins are derived from the "
        "noisy cells: free).",
    )
    dp_events_per_person: int = Field(
        default=50,
        ge=1,
        description="Contribution bound: events (care lines) of one person counted in a cell at most; a person's "
        "further events are dropped before noise.",
    )
    dp_amount_lower: float = Field(
        default=0.0,
        allow_inf_nan=False,
        description="Contribution bound: one person's total amount in a cell (a sum or a mean's numerator) is "
        "clamped to at least this before noise.",
    )
    dp_amount_upper: float = Field(
        default=5_000.0,
        gt=0,
        allow_inf_nan=False,
        description="Contribution bound: one person's total amount in a cell is clamped to at most this before noise.",
    )
    dp_confidence: float = Field(
        default=0.95, gt=0, lt=1, description="Level of the interval released beside every noisy value."
    )

    # Authentication policy.
    session_minutes: int = Field(default=30, description="A signed-in session expires after this long.")
    api_token_max_days: int = Field(default=90, description="Longest lifetime of a scoped API token.")
    login_free_failures: int = Field(
        default=5,
        description="Failed sign-ins from one client address for one username before that pair must wait "
        "(per-source throttling; no account is ever locked by failures).",
    )
    login_source_free_failures: int = Field(
        default=20, description="Failed sign-ins from one client address, all usernames together, before it must wait."
    )
    login_backoff_seconds: int = Field(
        default=2, description="First wait once a source is throttled; it doubles with each further failure."
    )
    login_backoff_max_seconds: int = Field(default=900, description="Longest wait a throttled source is given.")
    login_throttle_forget_minutes: int = Field(
        default=60, description="A source's failure count is forgotten after this long without a failure."
    )
    login_throttle_max_sources: int = Field(
        default=100_000,
        description="No longer read: sign-in counts live in the database (table throttle_counter) and are swept once "
        "forgotten (login_throttle_forget_minutes), never evicted early (an eviction would give a source fresh tries).",
    )
    refused_records_per_minute: int = Field(
        default=30,
        description="Refused requests (422 validation, 413 too large) recorded per client address per minute; "
        "beyond it they are counted, and the count is recorded with the next one.",
    )
    forwarded_allow_ips: str | None = Field(
        default=None,
        description="`hygie serve` only: comma-separated addresses of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed (uvicorn's forwarded_allow_ips). None: those headers are never read and the "
        "client address is the TCP peer (every per-source limit counts it).",
    )
    metrics_host: str = Field(
        default="127.0.0.1", description="Address of the separate Prometheus listener (loopback by default)."
    )
    metrics_port: int | None = Field(
        default=None,
        description="Port of the separate Prometheus listener started with the portal; None: none. On the API "
        "port, /metrics answers only an operator or auditor.",
    )
    password_min_length: int = Field(default=12, description="Shortest accepted password.")
    password_memory_kib: int = Field(default=19_456, description="Argon2id memory per password hash (OWASP).")
    password_iterations: int = Field(default=2, description="Argon2id passes per password hash (OWASP).")
    portal_state_service: bool = Field(
        default=False,
        description="The operator declares this hub a service of the French State: only then do pages show the "
        "Marianne block and 'République française' (the DSFR licence reserves them to State services).",
    )
    portal_controller_name: str = Field(
        default="Hygie",
        min_length=1,
        max_length=80,
        description="The data controller's own name, shown in the neutral header of a non-State hub.",
    )
    enrolment_code_hours: int = Field(
        default=72, description="Hours a staff account's one-time enrolment code stays valid once mailed."
    )
    enrolment_portal_url: str = Field(
        default="http://127.0.0.1:8000",
        description="The portal's address as the holder reaches it; the enrolment mail points at /activation there.",
    )
    # Citizens' OpenID Connect path (hygie.governance.oidc): FranceConnect-style identity provider.
    oidc_issuer: str | None = Field(
        default=None,
        description="Issuer URL of the citizens' OpenID Connect provider (discovery at "
        "/.well-known/openid-configuration); None: the path is off. https, or http on loopback only.",
    )
    oidc_client_id: str = Field(default="", description="This hub's client id at the provider.")
    oidc_client_secret: SecretStr | None = Field(
        default=None, description="The client secret (environment only; oidc_client_secret_file is preferred)."
    )
    oidc_client_secret_file: Path | None = Field(
        default=None, description="A file holding the client secret (read at use, never a command-line argument)."
    )
    oidc_redirect_uri: str = Field(
        default="http://127.0.0.1:8000/citoyen/connexion-fc/retour",
        description="The callback registered at the provider (the portal's /citoyen/connexion-fc/retour).",
    )
    oidc_scopes: str = Field(
        default="openid given_name family_name birthdate gender birthplace birthcountry",
        description="Scopes asked of the provider: the identity pivot, one scope per claim as FranceConnect has it.",
    )
    oidc_acr: str = Field(default="eidas1", description="Assurance level an enrolment needs (acr_values).")
    oidc_acr_strong: str = Field(
        default="eidas2", description="Substantial assurance level a step-up needs (a breach-flagged person)."
    )
    oidc_acr_order: list[str] = Field(
        default=["eidas1", "eidas2", "eidas3"], description="Assurance levels from weakest to strongest."
    )
    oidc_flow_minutes: int = Field(
        default=10, description="Minutes a provider login may take: its state, nonce and PKCE verifier expire then."
    )
    oidc_flow_retention_hours: int = Field(
        default=24,
        ge=1,
        description="Hours a provider login's row (hashed state and nonce, no identity) is kept before it is deleted; "
        "longer than every window that reads it (enrolment, step-up).",
    )
    oidc_enrol_minutes: int = Field(
        default=15, description="Minutes to choose a username and password once the provider has vouched."
    )
    oidc_clock_skew_seconds: int = Field(default=60, description="Leeway on the ID token's exp and iat.")
    oidc_http_timeout_seconds: float = Field(
        default=10.0, description="Longest wait for the provider's discovery, keys, token and userinfo endpoints."
    )
    oidc_step_up_minutes: int = Field(
        default=15, description="Minutes a step-up login at the strong level counts for a sensitive change."
    )
    oidc_attempts_per_source: int = Field(
        default=30,
        description="Provider logins started, and provider callbacks taken, from one client address per window "
        "(each counted apart): every start writes a flow and a record, every callback a record.",
    )
    oidc_attempt_window_minutes: int = Field(default=15, description="Window of oidc_attempts_per_source.")
    # Citizens' letters by post (hygie.governance.letters): activation, new-device and contact-change codes.
    citizen_letter_valid_days: int = Field(default=30, description="Days a code sent by post stays valid.")
    citizen_letter_period_days: int = Field(
        default=30, description="At most one live letter of each kind per person within this many days."
    )
    citizen_letter_requests_per_nir: int = Field(
        default=3, description="Letter requests for one typed NIR (keyed by its blind index) per window."
    )
    citizen_letter_requests_per_source: int = Field(
        default=20, description="Letter requests from one client address (all NIRs together) per window."
    )
    citizen_letter_requests_per_network: int = Field(
        default=200, description="Letter requests from one IPv6 /48 (all its /64 sources together) per window."
    )
    citizen_letter_requests_per_day: int = Field(
        default=20000,
        description="Letter requests from all sources together per window: past it everyone is refused (429) and "
        "the first refusal is recorded as citizen.letter.cap.",
    )
    citizen_letter_window_hours: int = Field(default=24, description="Window of the letter request limits.")
    citizen_code_attempts_per_person: int = Field(
        default=5,
        description="Wrong postal codes for one person (typed NIR or account) per window, each kind of code apart; "
        "a right code is never refused by a limit.",
    )
    citizen_code_attempts_per_source: int = Field(
        default=20, description="Wrong postal codes from one client address per window, each kind of code apart."
    )
    citizen_code_attempts_per_network: int = Field(
        default=100, description="Wrong postal codes from one IPv6 /48 per window, each kind of code apart."
    )
    citizen_code_window_hours: int = Field(default=24, description="Window of the postal code attempt limits.")
    citizen_device_cookie_days: int = Field(
        default=395, description="Lifetime of the device cookie a breach-flagged citizen's sign-in is checked with."
    )
    citizen_insurer_name: str = Field(
        default="Caisse primaire d'assurance maladie (démonstration Hygie)",
        description="The sender printed at the top of citizens' letters.",
    )
    citizen_insurer_address: str = Field(
        default="Service des comptes en ligne\nCS 00000\n00000 HYGIE CEDEX",
        description="The sender's postal address printed under its name.",
    )
    mail_smtp_host: str = Field(default="localhost", description="SMTP server that sends staff enrolment mails.")
    mail_smtp_port: int = Field(default=25, description="Port of the SMTP server that sends staff enrolment mails.")
    mail_from: str = Field(default="comptes@hygie.invalid", description="Sender address of staff enrolment mails.")
    mail_smtp_starttls: Literal["auto", "required", "off"] = Field(
        default="auto",
        description="STARTTLS on every SMTP connection (staff mails and breach notices): 'auto' requires it except "
        "for a loopback host (where it is used if offered), 'required' everywhere, 'off' never (hygie.mail).",
    )
    mail_smtp_ca_file: Path | None = Field(
        default=None,
        description="PEM authorities the SMTP server's certificate is checked against (else the system's).",
    )
    mail_smtp_username: str | None = Field(
        default=None, description="SMTP AUTH user (staff mails and breach notices); None: no authentication."
    )
    mail_smtp_password: SecretStr | None = Field(
        default=None, description="SMTP AUTH password (HYGIE_MAIL_SMTP_PASSWORD), if no mail_smtp_password_file."
    )
    mail_smtp_password_file: Path | None = Field(
        default=None, description="A file holding the SMTP AUTH password (read at each send; preferred to the env)."
    )
    mail_smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Longest wait for each step of an SMTP exchange (connect, TLS, each command)."
    )

    # Breach response (hygie.breach).
    breach_upload_max_mib: int = Field(
        default=512,
        description="Largest leaked file the portal accepts (MiB); uploads are held in memory, never spooled to "
        "disk, and a larger request body is refused with 413. `hygie breach import` reads any size.",
    )
    breach_retention_days: int = Field(
        default=90, description="Days a leaked file is kept (encrypted) after import, then destroyed by the sweep."
    )
    breach_flag_days: int = Field(
        default=180, description="Days a person found in a leak needs a stronger identity check for sensitive changes."
    )
    breach_match_score: float = Field(
        default=0.9, description="Lowest confidence (0-1) of an automatic match; below it a candidate goes to review."
    )
    breach_close_score: float = Field(
        default=0.8,
        description="In review, a leaked field that is not identical to the candidate's is 'close' from this "
        "similarity (0-1) up, else 'differs'.",
    )
    breach_import_confirmer_roles: list[str] = Field(
        default=["dpo", "operator", "auditor"],
        description="Roles whose account may confirm a leak imported over HTTP by someone else; nothing is "
        "matched before that confirmation.",
    )
    breach_reveal_approver_roles: list[str] = Field(
        default=["dpo", "auditor"],
        description="Roles whose account may approve the DPO's request to see a candidate's vault identity.",
    )
    breach_reveal_window_minutes: int = Field(
        default=10,
        description="Minutes after its approval during which the asker may see an approved identity, once.",
    )
    breach_smtp_host: str = Field(default="localhost", description="SMTP server that sends breach notices.")
    breach_smtp_port: int = Field(default=25, description="Port of the SMTP server that sends breach notices.")
    breach_smtp_from: str = Field(default="dpo@hygie.invalid", description="Sender address of breach notices.")
    breach_check_per_ip_per_hour: int = Field(
        default=10, description="Anonymous 'am I in it?' evaluations per client address per hour."
    )
    breach_check_global_per_minute: int = Field(
        default=600, description="Anonymous 'am I in it?' evaluations per minute for everyone together."
    )
    breach_check_prefix_bits: int = Field(
        default=8, description="Bits of the client's keyed tag the server sees in an 'am I in it?' lookup."
    )
    breach_match_workers: int = Field(
        default=2, description="Processes that match a large leak's rows in parallel (1: in the importing process)."
    )
    breach_parallel_rows: int = Field(
        default=50_000, description="Leaks of at least this many rows are matched by breach_match_workers processes."
    )

    # Improper-payment rate (hygie.control.sample, review, estimate): a reviewed stratified random sample.
    control_purposes: list[str] = Field(
        default=["expenditure"],
        description="Lawful purposes (art. L1461-1 III) under which a project may sample and review claims.",
    )
    control_amount_bands: list[float] = Field(
        default=[20.0, 50.0, 150.0, 500.0],
        description="Upper bounds (EUR, increasing) of the paid-amount bands that stratify the sample, with the "
        "care type; a last band holds larger claims.",
    )
    control_target_half_width: float = Field(
        default=0.01,
        description="Half-width of the 95 % interval the sample is sized for, as a fraction (0.01 = 1 point).",
    )
    control_expected_rate: float = Field(
        default=0.05, description="Improper-payment rate assumed when sizing the sample (a fraction)."
    )
    control_min_per_stratum: int = Field(
        default=30, description="Fewest claims drawn in a stratum (a smaller stratum is taken whole)."
    )
    control_max_sample: int = Field(
        default=50_000, description="Most claims one sample may hold, whatever the target precision asks."
    )

    # Leads found by rules (hygie.control.rules): what makes a claim, a provider or a beneficiary worth a look.
    control_max_daily_acts: dict[str, int] = Field(
        default={"default": 60, "0": 600, "38": 600},
        description="Most acts one provider can bill in a day, by specialty code PSE_SPE_COD ('default' for any "
        "other; '0' pharmacies and non-physicians, '38' laboratories dispense many lines a day).",
    )
    control_duplicate_natures: list[tuple[int, int]] = Field(
        default=[(1100, 1299)],
        description="PRS_NAT_REF ranges (consultations, visits) billed at most once per patient, provider and day: "
        "a second identical line is a duplicate lead.",
    )
    control_outlier_min_acts: int = Field(
        default=20, description="Fewest acts a provider must bill in the period to be compared with peers."
    )
    control_outlier_min_peers: int = Field(
        default=5, description="Fewest peers (same specialty, region) for a robust comparison; else national."
    )
    control_outlier_robust_z: float = Field(
        default=8.0,
        description="Robust z-score (|x - median| / (1.4826 MAD)) of a provider's amount per act, acts per "
        "patient or patients per day beyond which it is an outlier lead.",
    )
    control_outlier_min_spread: float = Field(
        default=0.5,
        description="Smallest spread a robust z-score divides by, as a fraction of the peers' median (tariffs are "
        "fixed: without it, a provider a few euros above identical peers, or allowed to bill above the tariff, "
        "would be an outlier).",
    )
    control_outlier_skip_specialties: list[int] = Field(
        default=[0, 38],
        description="Specialty codes (PSE_SPE_COD) not compared by the outlier rule: pharmacies and laboratories "
        "bill lines whose amount depends on the product, not on the professional.",
    )
    control_isolation_min_score: float = Field(
        default=0.55,
        description="Isolation Forest anomaly score (0.5 ordinary, 1 isolated at once) above which a provider is a "
        "multivariate outlier lead.",
    )
    control_isolation_min_z: float = Field(
        default=3.0,
        description="Robust deviations above its peers a metric of a multivariate outlier lead must reach (on "
        "control_isolation_min_metrics metrics).",
    )
    control_isolation_min_metrics: int = Field(
        default=2,
        ge=1,
        description="Metrics a multivariate outlier lead must have control_isolation_min_z above its peers: unusual "
        "in combination, not on one axis (the univariate rule's business).",
    )
    control_isolation_trees: int = Field(default=200, description="Trees of the Isolation Forest.")
    control_isolation_seed: int = Field(default=0, description="Seed of the Isolation Forest (reproducible runs).")
    control_paper_min_shared: int = Field(
        default=3,
        description="Fewest beneficiaries sharing one keyed contact (phone or address HMAC) for a 'patients only "
        "on paper' lead, when their care has no other trace.",
    )
    control_lift_approver_roles: list[str] = Field(
        default=["reviewer", "dpo"],
        description="Roles that may approve, as the second person, lifting a lead's pseudonym for an investigation.",
    )
    control_lift_window_minutes: int = Field(
        default=30, description="Minutes after approval within which the requester may see the lifted identity once."
    )

    # Key derivation (Argon2id, RFC 9106 second recommended option).
    kdf_memory_kib: int = Field(default=65_536)
    kdf_iterations: int = Field(default=3)
    kdf_lanes: int = Field(default=4)

    # Resilience of the portal (hygie.portal.resilience): admission per class of route, timeouts, breakers.
    # The concurrency of all classes together stays under the database pool (pool size + overflow), so an
    # overloaded portal queues and sheds at its door instead of timing out inside the pool.
    request_body_max_kib: int = Field(
        default=1024,
        description="Largest request body the portal reads (KiB), leaked-file uploads excepted "
        "(breach_upload_max_mib); a larger one is refused with 413 before it is read.",
    )
    admission_citizen: AdmissionLimits = Field(
        default=AdmissionLimits(
            concurrency=8, queue=32, wait_seconds=2.0, deadline_seconds=10.0, retry_after_seconds=5
        ),
        description="Citizens' reads (/me/*, /registre, citizen pages): capacity of their own, never lent to others.",
    )
    admission_governance: AdmissionLimits = Field(
        default=AdmissionLimits(
            concurrency=4, queue=16, wait_seconds=5.0, deadline_seconds=30.0, retry_after_seconds=10
        ),
        description="Sign-in, accounts, projects, reviews, alerts.",
    )
    admission_research: AdmissionLimits = Field(
        default=AdmissionLimits(
            concurrency=2, queue=2, wait_seconds=1.0, deadline_seconds=120.0, retry_after_seconds=30
        ),
        description="Heavy research work (analyses, jobs, views, dummy data): the smallest share, shed first.",
    )
    admission_public: AdmissionLimits = Field(
        default=AdmissionLimits(
            concurrency=4, queue=16, wait_seconds=2.0, deadline_seconds=10.0, retry_after_seconds=5
        ),
        description="Public register and audit log endpoints (no login).",
    )
    admission_health: AdmissionLimits = Field(
        default=AdmissionLimits(concurrency=2, queue=8, wait_seconds=1.0, deadline_seconds=5.0, retry_after_seconds=1),
        description="/healthz, /readyz, /metrics: kept apart so probes answer while the portal is busy.",
    )
    research_yields_to_citizens: bool = Field(
        default=True, description="Research requests are refused at once while citizens' requests wait in queue."
    )
    breaker_failures: int = Field(
        default=5,
        description="Failures in a row of one dependency (database, warehouse, key custody) that open its breaker.",
    )
    breaker_open_seconds: float = Field(
        default=5.0, description="How long an open breaker answers 503 at once before probing the dependency again."
    )
    dependency_probe_seconds: float = Field(
        default=2.0, description="Longest a probe of the database or warehouse may take (readiness, half-open breaker)."
    )
    drain_seconds: float = Field(
        default=20.0, description="On SIGTERM: longest wait for requests in flight (new ones get 503) before stopping."
    )
    shutdown_grace_seconds: float = Field(
        default=30.0, description="uvicorn's timeout_graceful_shutdown: connections still open after it are closed."
    )
    database_statement_timeout_ms: int = Field(
        default=60_000, description="PostgreSQL statement_timeout for every connection (0: none)."
    )
    database_connect_timeout_seconds: int = Field(
        default=5, description="Longest wait to open a PostgreSQL connection."
    )
    database_pool_size: int = Field(default=10, description="Connections kept open to the metadata database.")
    database_max_overflow: int = Field(default=20, description="Extra connections opened under load, then closed.")
    database_pool_timeout_seconds: float = Field(
        default=10.0, description="Longest wait for a free connection of the pool before the call fails."
    )
    sqlite_busy_timeout_ms: int = Field(
        default=30_000, description="How long a SQLite connection waits for another writer's lock before failing."
    )

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'hygie.db').resolve()}"


def get_settings() -> Settings:
    """Read the settings afresh: cheap, and lets each command or test see its own environment."""
    return Settings()
