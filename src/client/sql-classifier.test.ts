import { describe, expect, it } from 'vitest';
import { classifySql, SqlEffect } from './sql-classifier.js';

const effects = (sql: string): number => classifySql(sql).effects;

describe('classifySql', () => {
  it('finds SET and RESET wherever a statement can start', () => {
    for (const sql of ['SET search_path = x', '  set TimeZone to UTC', 'select 1; SET a.b = 1', 'select 1;\nreset all', '/* why */ SET x.y = 1', '-- note\nSET x.y = 1', "select set_config('x.y', '1', false)"]) {
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
