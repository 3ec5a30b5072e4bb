"""
What an application does with asyncpg (Debian's python3-asyncpg), as JSON: run by test/python-drivers.test.ts once
directly and once through pgmux, WORKERS tasks sharing one asyncpg pool, and the two transcripts compared. asyncpg
prepares every query under a name of its own and caches it per connection, introspects types with Parse/Describe/
Flush, copies in binary, and resets each connection it takes back into its pool.

usage: asyncpg_workload.py DATABASE_URL WORKERS
"""
import asyncio
import datetime
import decimal
import json
import sys

import asyncpg

URL = sys.argv[1]
WORKERS = int(sys.argv[2])


def plain(v):
    if isinstance(v, asyncpg.Record):
        return list(v.items())
    return repr(v)


async def worker(i, out, pool):
    log = []

    def rec(tag, value):
        log.append([tag, json.loads(json.dumps(value, default=plain))])

    async def attempt(tag, f):
        try:
            rec(tag, await f())
        except Exception as e:  # noqa: BLE001 - what the application would see, whatever it is
            rec(tag, ['ERROR', type(e).__name__, getattr(e, 'sqlstate', None), str(e).split('\n')[0]])

    t = f'apg_{i}'
    async with pool.acquire() as c:
        await c.execute(f'drop table if exists {t}; create table {t} (id int primary key, v text, ts timestamptz, j jsonb)')
        await attempt('server settings', lambda: c.fetch("select current_setting('TimeZone'), current_setting('application_name'), current_setting('search_path')"))
        for k in range(5):
            await attempt(f'fetch {k}', lambda: c.fetch('select $1::int + 1 as x, $2::text as y', k, 'z'))
        await attempt('executemany', lambda: c.executemany(f'insert into {t} (id, v, ts) values ($1, $2, $3)',
                                                           [(k, f'v{k}', datetime.datetime(2020, 1, 1, k, tzinfo=datetime.timezone.utc)) for k in range(10)]))
        await attempt('copy_records_to_table', lambda: c.copy_records_to_table(t, records=[(k, f'c{k}', None, None) for k in range(100, 110)]))
        await attempt('count', lambda: c.fetchval(f'select count(*) from {t}'))

        async def cursor():
            async with c.transaction():
                cur = await c.cursor(f'select id from {t} order by id')
                return [await cur.fetch(3), await cur.fetch(3)]
        await attempt('cursor', cursor)

        async def iterate():
            async with c.transaction():
                return [r['id'] async for r in c.cursor(f'select id from {t} order by id', prefetch=4)]
        await attempt('cursor iteration', iterate)

        async def transaction():
            async with c.transaction(isolation='serializable'):
                await c.execute(f"insert into {t} values (500, 'x', now(), '{{}}')")
                try:
                    async with c.transaction():
                        await c.execute(f"insert into {t} values (500, 'dup', now(), null)")
                except asyncpg.UniqueViolationError as e:
                    rec('savepoint error', [e.sqlstate, str(e)])
                return await c.fetchval('show transaction_isolation')
        await attempt('transaction', transaction)
        await attempt('division by zero', lambda: c.fetch('select 1/$1::int', 0))
        await attempt('after error', lambda: c.fetch('select 42 as answer'))
        await attempt('set', lambda: c.execute("set statement_timeout = '12s'"))
        await attempt('set stays', lambda: c.fetchval('show statement_timeout'))
        await c.set_type_codec('jsonb', encoder=json.dumps, decoder=json.loads, schema='pg_catalog', format='text')
        await attempt('jsonb codec', lambda: c.fetchval('select $1::jsonb', {'a': i}))
        copied = bytearray()

        async def sink(data):
            copied.extend(data)
        await attempt('copy_from_query', lambda: c.copy_from_query(f'select id, v from {t} order by id', output=sink))
        rec('copied', copied.decode())
        stmt = await c.prepare(f'select v from {t} where id = $1')
        await attempt('prepared', lambda: stmt.fetch(3))
        rec('prepared attributes', [[a.name, a.type.name] for a in stmt.get_attributes()])
        await c.execute(f'alter table {t} add column extra int default 7')
        await attempt('select * after alter table', lambda: c.fetch(f'select * from {t} where id = 1'))
        await attempt('prepared after alter table', lambda: stmt.fetch(3))
    # A connection taken from the pool again: asyncpg reset it (RESET ALL among others) when it came back.
    async with pool.acquire() as c:
        await attempt('after pool reset', lambda: c.fetch("select current_setting('statement_timeout'), current_setting('TimeZone'), current_setting('application_name')"))
        await c.execute(f'drop table {t}')
    out[i] = log


async def main():
    pool = await asyncpg.create_pool(URL, min_size=2, max_size=6, server_settings={'application_name': 'apg', 'TimeZone': 'Asia/Tokyo'})
    out = {}
    await asyncio.gather(*[worker(i, out, pool) for i in range(WORKERS)])
    await pool.close()
    print(json.dumps({str(k): out.get(k) for k in range(WORKERS)}, sort_keys=True))

asyncio.run(main())
