"""Backups and restores: `peerline db backup PATH` and `peerline db restore PATH`.

SQLite: the backup is a copy made with SQLite's online backup API in one step, so it is one
consistent snapshot even while the service answers calls (under WAL a reader never blocks
the phone line's writers); it is written beside PATH and renamed into place only when
complete and checked. A restore copies it back the same way.

PostgreSQL: backups are `pg_dump`'s job (consistent, and the operator's own tooling already
schedules and ships them); `backup` prints the command to run, never with the password
(pg_dump reads PGPASSWORD or ~/.pgpass). `restore` runs `pg_restore` with the password
passed in its environment, not on its command line.

Either way a restore refuses a database that holds any row unless told `force`.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import URL, make_url

from app.models import Base

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"
BUSY_SECONDS = 10


class BackupError(Exception):
    """What went wrong, in one line an operator can act on."""


@dataclass(frozen=True)
class Outcome:
    message: str
    command: str | None = None  # PostgreSQL: what the operator runs


def _sqlite_file(url: URL) -> Path:
    if not url.database or url.database == ":memory:" or url.database.startswith("file:"):
        raise BackupError("DATABASE_URL must name a SQLite file (sqlite:///path/to/peerline.db)")
    return Path(url.database)


def _is_postgres(url: URL) -> bool:
    return url.get_backend_name() == "postgresql"


def _pg_args(url: URL) -> list[str]:
    args = []
    if url.host:
        args.append(f"--host={url.host}")
    if url.port:
        args.append(f"--port={url.port}")
    if url.username:
        args.append(f"--username={url.username}")
    args.append(f"--dbname={url.database or 'postgres'}")
    return args


def _counts(conn: sqlite3.Connection) -> str:
    parts = []
    for table in ("participant", "pair", "call"):
        try:
            (n,) = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        except sqlite3.DatabaseError:
            continue
        parts.append(f"{n} {table}{'s' if n != 1 else ''}")
    return ", ".join(parts)


# ------------------------------------------------------------------ backup


def backup(database_url: str, path: Path, *, force: bool = False) -> Outcome:
    url = make_url(database_url)
    if _is_postgres(url):
        command = shlex.join(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={path}", *_pg_args(url)]
        )
        return Outcome(
            "PostgreSQL is backed up with pg_dump; run this (password: PGPASSWORD or ~/.pgpass):",
            command,
        )
    source = _sqlite_file(url)
    if not source.is_file():
        raise BackupError(f"there is no database file at {source}")
    if path.exists() and not force:
        raise BackupError(f"{path} exists already; add --force to replace it")
    if path.resolve() == source.resolve():
        raise BackupError("the backup must go to another file than the database itself")
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        with (
            contextlib.closing(sqlite3.connect(source, timeout=BUSY_SECONDS)) as src,
            contextlib.closing(sqlite3.connect(partial)) as dst,
        ):
            # one step (pages=-1): a single read snapshot, never restarted by concurrent writes
            src.backup(dst)
            # a backup is one self-contained file, not a WAL database needing its -wal beside it
            dst.execute("PRAGMA journal_mode=DELETE")
            (check,) = dst.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BackupError(f"the copy failed its integrity check ({check})")
            summary = _counts(dst)
        with partial.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(partial, path)
    except sqlite3.Error as exc:
        raise BackupError(f"could not back up {source}: {exc}") from None
    except OSError as exc:
        raise BackupError(f"could not write {path}: {exc.strerror or exc}") from None
    finally:
        partial.unlink(missing_ok=True)
    return Outcome(f"backed up {source} to {path} ({summary})")


# ------------------------------------------------------------------ restore


def _file_kind(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise BackupError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_CUSTOM_MAGIC):
        return "pg_dump"
    raise BackupError(f"{path} is neither a SQLite backup nor a pg_dump archive (--format=custom)")


def holds_data(database_url: str) -> bool:
    """True when any of Peerline's tables has a row: a restore would overwrite someone's data."""
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for table in Base.metadata.sorted_tables:
                if (
                    table.name in present
                    and conn.execute(text(f'SELECT 1 FROM "{table.name}" LIMIT 1')).first()
                ):
                    return True
    finally:
        engine.dispose()
    return False


def restore(database_url: str, path: Path, *, force: bool = False) -> Outcome:
    url = make_url(database_url)
    kind = _file_kind(path)
    if _is_postgres(url) and kind != "pg_dump":
        raise BackupError(
            f"{path} is a SQLite backup; DATABASE_URL is PostgreSQL (restore a pg_dump archive)"
        )
    if not _is_postgres(url) and kind != "sqlite":
        raise BackupError(f"{path} is a pg_dump archive; DATABASE_URL is SQLite (restore it with pg_restore)")
    target_exists = _is_postgres(url) or _sqlite_file(url).exists()
    try:
        non_empty = target_exists and holds_data(database_url)
    except Exception as exc:
        raise BackupError(f"cannot read the database to restore into: {type(exc).__name__}") from None
    if non_empty and not force:
        raise BackupError(
            "the database in DATABASE_URL holds data; add --force to replace it with the backup"
        )
    if _is_postgres(url):
        return _restore_postgres(url, path)
    return _restore_sqlite(url, path)


def _restore_sqlite(url: URL, path: Path) -> Outcome:
    target = _sqlite_file(url)
    try:
        with contextlib.closing(sqlite3.connect(path)) as src:
            (check,) = src.execute("PRAGMA quick_check").fetchone()
            if check != "ok":
                raise BackupError(f"{path} failed its integrity check ({check}); it was not restored")
            tables = {row[0] for row in src.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "participant" not in tables:
                raise BackupError(f"{path} is not a Peerline database")
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(sqlite3.connect(target, timeout=BUSY_SECONDS)) as dst:
                src.backup(dst)
                dst.execute("PRAGMA journal_mode=WAL")
                summary = _counts(dst)
    except sqlite3.Error as exc:
        raise BackupError(f"could not restore {path}: {exc}") from None
    return Outcome(f"restored {path} into {target} ({summary}); run `peerline db upgrade` if it is older")


def _restore_postgres(url: URL, path: Path) -> Outcome:
    args = [
        "pg_restore",
        "--no-owner",
        "--no-privileges",
        "--clean",
        "--if-exists",
        "--single-transaction",
        "--exit-on-error",
        *_pg_args(url),
        str(path),
    ]
    if shutil.which("pg_restore") is None:
        raise BackupError(f"pg_restore is not installed here; run: {shlex.join(args)}")
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)  # never on the command line, where ps shows it
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        raise BackupError(f"pg_restore failed: {lines[-1] if lines else f'exit {done.returncode}'}")
    return Outcome(f"restored {path} into {url.database}; run `peerline db upgrade` if it is older")
