import { test } from 'node:test';
import assert from 'node:assert/strict';
import { POSTGRES_ONLY, rebind, statementsFor } from '../../src/store/sql.js';

test('rebind numbers ? in order for PostgreSQL and leaves quoted ones alone', () => {
  assert.equal(rebind(`SELECT ? AS a, '?' AS "b?", 'it''s ?' AS c WHERE x = ? AND y = ?`), `SELECT $1 AS a, '?' AS "b?", 'it''s ?' AS c WHERE x = $2 AND y = $3`);
  assert.equal(rebind('SELECT 1'), 'SELECT 1');
  assert.equal(rebind(statementsFor('postgres').activateFactor), statementsFor('postgres').activateFactor.replace('?', '$1').replace('?', '$2').replace('?', '$3').replace('?', '$4'));
  assert.match(rebind(POSTGRES_ONLY.insertRecoveryCodes), /SELECT \$1, unnest\(\$2::text\[\]\), \$3$/);
});
