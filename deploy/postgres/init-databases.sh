#!/bin/sh
# One PostgreSQL role and one database per intyg service (docs/deployment.md).
#
# Run once by the official postgres image on an empty data volume (mounted into
# /docker-entrypoint-initdb.d/), as POSTGRES_USER. INTYG_DATABASE_URL_FILES lists the services'
# database URL secrets, postgresql://ROLE:PASSWORD@HOST:PORT/DATABASE: the same files the
# services read, so each password is written down once. ROLE and DATABASE must be plain
# lower-case identifiers, PASSWORD URL-safe (deploy/make_secrets.py makes them so). Each role
# owns its database and no other role may connect to it. Running it again creates nothing
# twice (an existing role gets the password of its URL).
set -eu

: "${INTYG_DATABASE_URL_FILES:?names the database URL secret files}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"

matches() { # matches EXTENDED_REGEX VALUE: the whole value, one line
    [ "$(printf '%s' "$2" | wc -l)" -eq 0 ] && printf '%s' "$2" | grep -Eqx "$1"
}

for file in $INTYG_DATABASE_URL_FILES; do
    url=$(cat "$file")
    rest=${url#postgresql://}
    userinfo=${rest%%@*}
    role=${userinfo%%:*}
    password=${userinfo#*:}
    database=${rest##*/}
    if [ "$rest" = "$url" ] || [ "$userinfo" = "$role" ] \
        || ! matches '[a-z_][a-z0-9_]{0,62}' "$role" \
        || ! matches '[a-z_][a-z0-9_]{0,62}' "$database" \
        || ! matches '[A-Za-z0-9_-]{16,}' "$password"; then
        echo "init-databases: $file is not postgresql://role:password@host:port/database" >&2
        exit 1
    fi
    # Checked above: plain identifiers and a URL-safe password, safe inside \set lines (which
    # keep the password out of the process list).
    psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
        --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
\set role '$role'
\set password '$password'
\set database '$database'
SELECT format('CREATE ROLE %I LOGIN', :'role')
    WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'database', :'role')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'database') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'database') \gexec
SELECT format('GRANT ALL ON DATABASE %I TO %I', :'database', :'role') \gexec
SQL
    echo "init-databases: database $database for role $role"
done
