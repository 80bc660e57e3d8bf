-- This Source Code Form is subject to the terms of the Mozilla Public License, v. 2.0. If a copy of the MPL was not
-- distributed with this file, You can obtain one at https://mozilla.org/MPL/2.0/.
-- Hygie's PostgreSQL roles and database. Run once, as the superuser, before `hygie init`:
--     sudo -u postgres psql -v ON_ERROR_STOP=1 -f deploy/postgresql/roles.sql
--
-- hygie_owner  owns the database, its schema and every table: it runs the migrations (`hygie init`, upgrades).
--              Nothing runs as it day to day.
-- hygie        the application (`hygie serve` and every other command): reads and writes rows, and nothing else.
--              It does not own the tables, so it cannot ALTER or DROP them, nor drop or disable their triggers;
--              on the audit tables it may add rows only (deploy/postgresql/grants.sql).
-- Passwords: none here. Locally the Debian default (peer authentication over the Unix socket) lets the system user
-- hygie connect as role hygie; otherwise set one with \password and give it through a pgpass file (operations.md).
CREATE ROLE hygie_owner LOGIN;
CREATE ROLE hygie LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
CREATE DATABASE hygie OWNER hygie_owner ENCODING 'UTF8' TEMPLATE template0;
REVOKE ALL ON DATABASE hygie FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE hygie TO hygie;
GRANT CONNECT ON DATABASE hygie TO hygie_owner;

\connect hygie
ALTER SCHEMA public OWNER TO hygie_owner;
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO hygie;
