#!/bin/bash
# The official mysql/mariadb images' contract, in a few lines: on the first start (an
# empty /var/lib/mysql) create the data folder, the root password, the database and
# the user from MYSQL_* (or MYSQL_*_FILE), with networking off so that nobody reaches
# the server half set up; then run mysqld as the mysql user on 3306, all interfaces.
set -euo pipefail

# VAR, or the content of the file VAR_FILE names.
file_env() {
	local var="$1" file_var="${1}_FILE"
	if [ -n "${!file_var:-}" ]; then
		export "$var"="$(< "${!file_var}")"
	fi
}

# `docker run image --port=3307`: options go to mysqld, as the official images do.
if [ "${1:0:1}" = "-" ]; then
	set -- mysqld "$@"
fi

if [ "$1" != "mysqld" ]; then
	exec "$@"
fi

if [ "$(id -u)" = "0" ]; then
	chown -R mysql:mysql /var/lib/mysql /run/mysqld
	exec setpriv --reuid=mysql --regid=mysql --init-groups "$BASH_SOURCE" "$@"
fi

# The official images listen on every interface; options given after these win (mysqld keeps the last).
set -- "$1" --bind-address=0.0.0.0 --skip-name-resolve "${@:2}"

for var in MYSQL_ROOT_PASSWORD MYSQL_DATABASE MYSQL_USER MYSQL_PASSWORD; do
	file_env "$var"
done

sql_string() { printf "'%s'" "${1//\'/\'\'}"; }

if [ ! -d /var/lib/mysql/mysql ]; then
	if [ -z "${MYSQL_ROOT_PASSWORD:-}" ] && [ -z "${MYSQL_ALLOW_EMPTY_PASSWORD:-}" ]; then
		echo "error: database is uninitialized and MYSQL_ROOT_PASSWORD is not set" >&2
		exit 1
	fi
	if [ "${MYSQL_USER:-}" = "root" ]; then
		echo "error: MYSQL_USER=root: set MYSQL_ROOT_PASSWORD for root instead" >&2
		exit 1
	fi
	echo "initializing the database in /var/lib/mysql"
	# Run as mysql, it cannot chown its setuid PAM helper; it says so, and nothing here needs it.
	mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db --skip-name-resolve \
		--auth-root-authentication-method=normal 2>&1 >/dev/null | grep -v auth_pam_tool >&2 || true
	"$@" --skip-networking --socket=/run/mysqld/init.sock &
	pid=$!
	for _ in $(seq 60); do
		mariadb --socket=/run/mysqld/init.sock -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
		sleep 0.5
	done
	{
		echo "SET @@SESSION.SQL_LOG_BIN=0;"
		# Only root@localhost and the accounts below: what mariadb-install-db adds for the host's
		# addresses (root@127.0.0.1 without a password) would shadow root@'%' over TCP.
		echo "DELETE FROM mysql.global_priv WHERE Host <> 'localhost' OR User = '';"
		echo "DELETE FROM mysql.proxies_priv WHERE Host <> 'localhost';"
		echo "FLUSH PRIVILEGES;"
		echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "${MYSQL_ROOT_PASSWORD:-}");"
		echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "${MYSQL_ROOT_PASSWORD:-}");"
		echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
		if [ -n "${MYSQL_DATABASE:-}" ]; then
			echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;"
		fi
		if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
			echo "CREATE USER $(sql_string "$MYSQL_USER")@'%' IDENTIFIED BY $(sql_string "$MYSQL_PASSWORD");"
			if [ -n "${MYSQL_DATABASE:-}" ]; then
				echo "GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO $(sql_string "$MYSQL_USER")@'%';"
			fi
		fi
		echo "FLUSH PRIVILEGES;"
	} | mariadb --socket=/run/mysqld/init.sock -uroot
	kill "$pid"
	wait "$pid" || true
	echo "database initialized; starting the server"
fi

exec "$@"
