/*
 * What an application does with PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java), as text: run by
 * test/jdbc-driver.test.ts directly and through pgmux, WORKERS threads each on its own connection, and the two
 * transcripts compared line by line. pgjdbc sends its own startup parameters (DateStyle, TimeZone from the JVM,
 * extra_float_digits, application_name), server-prepares a statement from its fifth execution (S_1, S_2 ...), sends
 * a batch as one pipeline with a single Sync, fetches with a row limit inside a transaction (portal suspended), and
 * sets isolation with SET SESSION CHARACTERISTICS.
 *
 * usage: java -cp postgresql.jar JdbcWorkload.java URL USER PASSWORD WORKERS
 */
import java.io.StringReader;
import java.io.StringWriter;
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcWorkload {
  static String url, user, password;

  public static void main(String[] args) throws Exception {
    url = args[0];
    user = args[1];
    password = args[2];
    int workers = Integer.parseInt(args[3]);
    String[] out = new String[workers];
    Thread[] threads = new Thread[workers];
    for (int i = 0; i < workers; i++) {
      final int w = i;
      threads[i] = new Thread(() -> {
        StringBuilder log = new StringBuilder();
        try {
          worker(w, log);
        } catch (Throwable e) {
          log.append("WORKER DIED ").append(e).append('\n');
        }
        out[w] = log.toString();
      });
      threads[i].start();
    }
    for (Thread t : threads) t.join();
    for (int i = 0; i < workers; i++) System.out.print("=== worker " + i + "\n" + out[i]);
  }

  static String rows(ResultSet rs) throws SQLException {
    ResultSetMetaData md = rs.getMetaData();
    StringBuilder b = new StringBuilder();
    for (int c = 1; c <= md.getColumnCount(); c++) b.append(c > 1 ? "," : "").append(md.getColumnLabel(c)).append(':').append(md.getColumnTypeName(c));
    while (rs.next()) {
      b.append(" |");
      for (int c = 1; c <= md.getColumnCount(); c++) b.append(' ').append(rs.getString(c));
    }
    return b.toString();
  }

  interface Step {
    String run() throws Exception;
  }

  static void attempt(StringBuilder log, Connection conn, String tag, Step step) throws Exception {
    String result;
    try {
      result = step.run();
    } catch (SQLException e) {
      result = "ERROR " + e.getSQLState() + " " + e.getMessage().split("\n")[0];
      if (!conn.getAutoCommit()) conn.rollback();
    }
    log.append(tag).append(": ").append(result).append('\n');
  }

  static void worker(int i, StringBuilder log) throws Exception {
    Properties props = new Properties();
    props.setProperty("user", user);
    props.setProperty("password", password);
    props.setProperty("ApplicationName", "jdbc" + i);
    props.setProperty("options", "-c search_path=pg_catalog,public -c statement_timeout=" + (20000 + i));
    String t = "jdbc_" + i;
    try (Connection conn = DriverManager.getConnection(url, props)) {
      boolean autocommit = i % 2 == 0;
      conn.setAutoCommit(autocommit);
      Runnable commit = () -> {
        try {
          if (!conn.getAutoCommit()) conn.commit();
        } catch (SQLException e) {
          throw new RuntimeException(e);
        }
      };
      try (Statement s = conn.createStatement()) {
        s.execute("drop table if exists public." + t);
        s.execute("create table public." + t + " (id int primary key, v text, ts timestamptz, f float8)");
      }
      commit.run();
      attempt(log, conn, "startup settings", () -> {
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("select current_setting('TimeZone'), current_setting('DateStyle'), current_setting('extra_float_digits'), current_setting('application_name'), current_setting('search_path'), current_setting('statement_timeout')")) {
          return rows(rs);
        }
      });
      commit.run();
      try (PreparedStatement ps = conn.prepareStatement("select ?::int + 1 as n, 0.1::float8 + 0.2 as f, current_setting('TimeZone') as tz")) {
        for (int k = 0; k < 8; k++) {
          final int kk = k;
          attempt(log, conn, "prepared " + k, () -> {
            ps.setInt(1, kk);
            try (ResultSet rs = ps.executeQuery()) {
              return rows(rs);
            }
          });
        }
      }
      commit.run();
      attempt(log, conn, "batch", () -> {
        try (PreparedStatement ps = conn.prepareStatement("insert into public." + t + " values (?, ?, ?, ?)")) {
          for (int k = 0; k < 20; k++) {
            ps.setInt(1, k);
            ps.setString(2, "v" + k);
            ps.setTimestamp(3, new Timestamp(1577836800000L + k * 3600_000L));
            ps.setDouble(4, k / 3.0);
            ps.addBatch();
          }
          return Arrays.toString(ps.executeBatch());
        }
      });
      commit.run();
      attempt(log, conn, "batch with a duplicate", () -> {
        try (PreparedStatement ps = conn.prepareStatement("insert into public." + t + " (id, v) values (?, ?)")) {
          for (int k : new int[] {100, 101, 5, 102}) {
            ps.setInt(1, k);
            ps.setString(2, "b" + k);
            ps.addBatch();
          }
          return Arrays.toString(ps.executeBatch());
        } catch (BatchUpdateException e) {
          if (!conn.getAutoCommit()) conn.rollback();
          return "BATCH ERROR " + e.getSQLState() + " " + Arrays.toString(e.getUpdateCounts());
        }
      });
      commit.run();
      attempt(log, conn, "rows", () -> {
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("select id, v, ts, f from public." + t + " order by id limit 5")) {
          return rows(rs);
        }
      });
      commit.run();
      if (!autocommit) {
        // A fetch size inside a transaction: Execute with a row limit, the portal suspended between fetches.
        attempt(log, conn, "fetch size", () -> {
          try (PreparedStatement ps = conn.prepareStatement("select id from public." + t + " order by id")) {
            ps.setFetchSize(3);
            try (ResultSet rs = ps.executeQuery()) {
              return rows(rs);
            }
          }
        });
        commit.run();
        attempt(log, conn, "savepoint", () -> {
          try (Statement s = conn.createStatement()) {
            s.executeUpdate("insert into public." + t + " (id, v) values (200, 'sp')");
            Savepoint sp = conn.setSavepoint();
            try {
              s.executeUpdate("insert into public." + t + " (id, v) values (200, 'dup')");
            } catch (SQLException e) {
              conn.rollback(sp);
              log.append("savepoint error: ").append(e.getSQLState()).append('\n');
            }
            try (ResultSet rs = s.executeQuery("select count(*) from public." + t)) {
              return rows(rs);
            }
          }
        });
        commit.run();
      }
      attempt(log, conn, "isolation", () -> {
        conn.setTransactionIsolation(Connection.TRANSACTION_SERIALIZABLE);
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("show transaction_isolation")) {
          return rows(rs);
        }
      });
      commit.run();
      attempt(log, conn, "isolation stays", () -> {
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("show transaction_isolation")) {
          return rows(rs) + " " + conn.getTransactionIsolation();
        }
      });
      commit.run();
      conn.setTransactionIsolation(Connection.TRANSACTION_READ_COMMITTED);
      commit.run();
      attempt(log, conn, "multiple results", () -> {
        try (Statement s = conn.createStatement()) {
          StringBuilder b = new StringBuilder();
          boolean isRs = s.execute("select 1 as a; set local lock_timeout = '4s'; select current_setting('lock_timeout') as b");
          while (true) {
            if (isRs) try (ResultSet rs = s.getResultSet()) {
              b.append('[').append(rows(rs)).append(']');
            }
            else if (s.getUpdateCount() == -1) break;
            else b.append("[count ").append(s.getUpdateCount()).append(']');
            isRs = s.getMoreResults();
          }
          return b.toString();
        }
      });
      commit.run();
      attempt(log, conn, "copy", () -> {
        CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
        long in = copy.copyIn("copy public." + t + " (id, v) from stdin", new StringReader("300\tc300\n301\tc301\n"));
        StringWriter w = new StringWriter();
        long out = copy.copyOut("copy (select id, v from public." + t + " where id >= 300 order by id) to stdout", w);
        return in + " " + out + " " + w.toString().replace("\n", "\\n");
      });
      commit.run();
      attempt(log, conn, "error", () -> {
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("select 1/0")) {
          return rows(rs);
        }
      });
      attempt(log, conn, "after error", () -> {
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("select 42")) {
          return rows(rs);
        }
      });
      commit.run();
      try (Statement s = conn.createStatement()) {
        s.execute("alter table public." + t + " add column extra int default 7");
      }
      commit.run();
      attempt(log, conn, "select * after alter table", () -> {
        try (PreparedStatement ps = conn.prepareStatement("select * from public." + t + " where id = ?")) {
          ps.setInt(1, 1);
          try (ResultSet rs = ps.executeQuery()) {
            return rows(rs);
          }
        }
      });
      commit.run();
      attempt(log, conn, "reset all", () -> {
        try (Statement s = conn.createStatement()) {
          s.execute("reset all");
        }
        try (Statement s = conn.createStatement(); ResultSet rs = s.executeQuery("select current_setting('search_path'), current_setting('statement_timeout'), current_setting('TimeZone'), current_setting('extra_float_digits')")) {
          return rows(rs);
        }
      });
      commit.run();
      try (Statement s = conn.createStatement()) {
        s.execute("drop table public." + t);
      }
      commit.run();
    }
  }
}
