"""
What an application does with psycopg2 (Debian's python3-psycopg2; Django's and SQLAlchemy's default), as JSON: run
by test/python-drivers.test.ts directly and through pgmux, WORKERS threads each on its own connection, and the two
transcripts compared. psycopg2 speaks the simple query protocol only (parameters are interpolated client-side), opens
a transaction implicitly unless autocommit, and names its server-side cursors.

usage: psycopg2_workload.py DATABASE_URL WORKERS
"""
import datetime
import decimal
import io
import json
import sys

import psycopg2
import psycopg2.extras

from threaded import run_threads

URL = sys.argv[1]
WORKERS = int(sys.argv[2])


def plain(v):
    return repr(v)


def worker(i, out):
    log = []

    def rec(tag, value):
        log.append([tag, json.loads(json.dumps(value, default=plain))])

    conn = psycopg2.connect(URL, options=f'-c TimeZone={["Asia/Tokyo", "America/New_York", "UTC"][i % 3]} -c statement_timeout={10000 + i}', application_name=f'pg2_{i}')
    conn.autocommit = i % 2 == 0

    def attempt(tag, sql, params=None, cursor_factory=None):
        try:
            with conn.cursor(cursor_factory=cursor_factory) as cur:
                cur.execute(sql, params)
                desc = None if cur.description is None else [[d.name, d.type_code] for d in cur.description]
                rows = cur.fetchall() if cur.description is not None else None
                rec(tag, [cur.statusmessage, cur.rowcount, desc, rows])
        except psycopg2.Error as e:
            rec(tag, ['ERROR', e.pgcode, str(e).split('\n')[0]])
            conn.rollback()
        if not conn.autocommit:
            conn.commit()

    t = f'pg2_{i}'
    attempt('drop', f'drop table if exists {t}')
    attempt('create', f'create table {t} (id int primary key, v text, ts timestamptz, n numeric)')
    attempt('settings', "select current_setting('TimeZone'), current_setting('statement_timeout'), current_setting('application_name')")
    attempt('insert', f'insert into {t} values (%s, %s, %s, %s)', (1, "it's", datetime.datetime(2021, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc), decimal.Decimal('1.5')))
    with conn.cursor() as cur:
        psycopg2.extras.execute_values(cur, f'insert into {t} (id, v) values %s', [(n, f'v{n}') for n in range(2, 20)])
        rec('execute_values', cur.rowcount)
    if not conn.autocommit:
        conn.commit()
    attempt('rows', f'select id, v, ts, n from {t} order by id limit 5')
    attempt('dict rows', f'select id, v from {t} where id < 4 order by id', cursor_factory=psycopg2.extras.RealDictCursor)
    attempt('set', "set datestyle to 'SQL, DMY'")
    attempt('set stays', "select now()::date = current_date, current_setting('DateStyle'), '2001-02-03'::date::text")
    attempt('two statements', "set local lock_timeout = '3s'; select current_setting('lock_timeout')")
    attempt('local gone', "select current_setting('lock_timeout')")
    attempt('error', 'select 1/0')
    attempt('after error', 'select 2')
    attempt('duplicate', f"insert into {t} values (1, 'again', null, null)")
    if not conn.autocommit:
        # Django's atomic(): savepoints inside the implicit transaction.
        with conn.cursor() as cur:
            cur.execute(f"insert into {t} values (100, 'sp', null, null)")
            cur.execute('savepoint s1')
            try:
                cur.execute(f"insert into {t} values (100, 'dup', null, null)")
            except psycopg2.Error as e:
                rec('savepoint error', e.pgcode)
                cur.execute('rollback to savepoint s1')
            cur.execute(f'select count(*) from {t}')
            rec('after savepoint', cur.fetchall())
        conn.commit()
        with conn.cursor(name=f'named_{i}') as cur:
            cur.itersize = 4
            cur.execute(f'select id from {t} order by id')
            rec('named cursor', [r[0] for r in cur])
        conn.commit()
    buf = io.StringIO()
    with conn.cursor() as cur:
        cur.copy_expert(f'copy (select id, v from {t} order by id) to stdout with csv', buf)
        rec('copy out', buf.getvalue())
        cur.copy_expert(f'copy {t} (id, v) from stdin with csv', io.StringIO('1000,a\n1001,b\n'))
        rec('copy in', cur.rowcount)
    if not conn.autocommit:
        conn.commit()
    if not conn.autocommit:
        conn.set_session(isolation_level='REPEATABLE READ', readonly=True)
    attempt('isolation', 'show transaction_isolation')
    attempt('read only', f"insert into {t} values (2000, 'ro', null, null)")
    if not conn.autocommit:
        conn.set_session(isolation_level='READ COMMITTED', readonly=False)
    attempt('reset all', 'reset all')
    attempt('after reset all', "select current_setting('DateStyle'), current_setting('TimeZone'), current_setting('statement_timeout')")
    attempt('drop again', f'drop table {t}')
    conn.close()
    out[i] = log


run_threads(worker, WORKERS)
