-- This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
-- distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
-- The application role's privileges on Hygie's tables. Run as hygie_owner after every migration (`hygie init`,
-- each upgrade), since new tables start with no grant:
--     psql "host=/run/postgresql dbname=hygie user=hygie_owner" -v ON_ERROR_STOP=1 -f deploy/postgresql/grants.sql
-- Safe to run again.

-- Rows: read and write, nothing else (no TRUNCATE, REFERENCES or TRIGGER; no DDL, as the tables are not its own).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO hygie;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO hygie;
REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA public FROM hygie;
-- The migrations' bookkeeping: read only (the server checks the schema is current; it never migrates).
REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM hygie;

-- The audit tables (every table an append-only trigger guards: the events, the Merkle tree, checkpoints, signing
-- keys, cosignatures...): rows may be added, never deleted. UPDATE stays granted because the sequencer locks
-- audit_event IN SHARE MODE, which PostgreSQL allows only to a role holding UPDATE, DELETE or TRUNCATE; every
-- UPDATE is refused by the trigger, which this role can neither drop nor disable.
DO $$
DECLARE audit_table regclass;
BEGIN
    FOR audit_table IN
        SELECT DISTINCT tgrelid::regclass FROM pg_trigger
        WHERE tgfoid = 'hygie_append_only()'::regprocedure AND NOT tgisinternal
    LOOP
        EXECUTE format('REVOKE DELETE, TRUNCATE ON %s FROM hygie', audit_table);
    END LOOP;
END $$;
