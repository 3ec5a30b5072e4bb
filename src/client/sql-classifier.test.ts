import { describe, expect, it } from 'vitest';
import { classifySql, SqlEffect, parameterCount } from './sql-classifier.js';

const effects = (sql: string): number => classifySql(sql).effects;

describe('classifySql', () => {
  it('finds SET and RESET wherever a statement can start', () => {
    for (const sql of ['SET search_path = x', '  set TimeZone to UTC', 'select 1; SET a.b = 1', 'select 1;\nreset all', '/* why */ SET x.y = 1', '-- note\nSET x.y = 1', "select set_config('x.y', '1', false)", 'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE']) {
      expect(effects(sql) & SqlEffect.SetsParams, sql).not.toBe(0);
    }
  });

  it('does not take UPDATE ... SET, SET LOCAL or words inside literals for a setting', () => {
    for (const sql of ['UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 3', 'SET LOCAL statement_timeout = 5', "select 'SET x = 1'", 'SET TRANSACTION ISOLATION LEVEL SERIALIZABLE']) {
      expect(effects(sql) & SqlEffect.SetsParams, sql).toBe(0);
    }
  });

  it('finds pinning state and its end', () => {
    expect(effects('LISTEN chan') & SqlEffect.Listen).not.toBe(0);
    expect(effects('select pg_advisory_lock(1)') & SqlEffect.AdvisoryLock).not.toBe(0);
    expect(effects('create temp table t (id int)') & SqlEffect.TempTable).not.toBe(0);
    expect(effects('declare c cursor with hold for select 1') & SqlEffect.HoldCursor).not.toBe(0);
    expect(effects('prepare p as select 1') & SqlEffect.SqlPrepare).not.toBe(0);
    expect(effects('UNLISTEN *') & SqlEffect.MayDropState).not.toBe(0);
    expect(classifySql('DISCARD ALL').lone).toEqual({ kind: 'discard-all' });
    expect(classifySql('DEALLOCATE "Foo"').lone).toEqual({ kind: 'deallocate', name: 'Foo' });
  });

  it('leaves ordinary queries alone', () => {
    expect(classifySql('SELECT abalance FROM pgbench_accounts WHERE aid = $1').effects).toBe(0);
    expect(classifySql('INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 2, 3, 4, now())').effects).toBe(0);
  });
});

describe('classifySql: settings the capture must ask for by name', () => {
  it('names custom settings set with SET, RESET or set_config', () => {
    expect(classifySql("SET app.tenant = 'a'").customSettings).toEqual(['app.tenant']);
    expect(classifySql('set session "App".Tenant to 1').customSettings).toEqual(['App.tenant']);
    expect(classifySql("select set_config('app.user_id', '42', false), set_config('TimeZone', 'UTC', false)").customSettings).toEqual(['app.user_id']);
    expect(classifySql('RESET app.tenant').customSettings).toEqual(['app.tenant']);
    expect(classifySql("SET TimeZone = 'UTC'").customSettings).toEqual([]);
  });

  it('takes DO and CALL for code that may set anything, and asks for pins without refusing them', () => {
    for (const sql of ["DO $$ BEGIN SET enable_seqscan = off; END $$", 'CALL p()']) {
      const { effects } = classifySql(sql);
      expect(effects & SqlEffect.SetsParams, sql).not.toBe(0);
      expect(effects & SqlEffect.MayCreateState, sql).not.toBe(0);
      expect(effects & (SqlEffect.Listen | SqlEffect.TempTable), sql).toBe(0);
    }
  });

  it('finds objects created in the temporary schema by name', () => {
    expect(classifySql('CREATE STATISTICS pg_temp.s ON a, b FROM t').effects & SqlEffect.TempTable).not.toBe(0);
    expect(classifySql('CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS $$ select 1 $$').effects & SqlEffect.TempTable).not.toBe(0);
  });
});

describe('parameterCount: parameters as PostgreSQL counts them', () => {
  it('is the highest $n referenced, or the declared types if more', () => {
    expect(parameterCount('select $1::int + 1', 0)).toBe(1);
    expect(parameterCount('insert into t values ($1, $2), ($2, $10)', 0)).toBe(10);
    expect(parameterCount('select 1', 0)).toBe(0);
    expect(parameterCount('select 1', 3)).toBe(3);
    expect(parameterCount('select $1', 2)).toBe(2);
  });

  it('does not count $n in literals, comments, quoted identifiers, dollar quotes or identifiers', () => {
    expect(parameterCount("select '$5', \"a $6\", $$ $7 $$, $q$ $8 $q$ -- $9\n, a$3 /* $4 */ from t where x = $2", 0)).toBe(2);
  });
});
