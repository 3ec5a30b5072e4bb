/**
 * SHOW CONFIG: every global setting with its value, default and whether SET can change it while
 * running (PgBouncer 1.25's columns: key, value, default, changeable; all text). Values are
 * written as in the configuration file (durations with a unit), so they can be given back to SET.
 */
import { formatSettingValue, SETTINGS, type PgmuxConfig } from '../config/index.js';
import { RESTART_SETTINGS } from './admin-host.js';
import { ResultSet, text } from './result-set.js';

export const CONFIG_COLUMNS = [text('key'), text('value'), text('default'), text('changeable')];

export function showConfig(config: PgmuxConfig): Buffer {
  const rs = new ResultSet(CONFIG_COLUMNS);
  for (const setting of SETTINGS) {
    rs.row([
      setting.name,
      formatSettingValue(setting, config[setting.name]),
      formatSettingValue(setting, setting.default),
      RESTART_SETTINGS.includes(setting.name) ? 'no' : 'yes',
    ]);
  }
  return rs.finish();
}
