// The vendor's newer server SDK (npm `@stream-io/node-sdk`, /api/v2/... paths) against a live
// broadcaster: segments, users, channels and a campaign run. Run by tests/test_node_sdk.py.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';

import { StreamClient } from '@stream-io/node-sdk';

const { BROADCASTER_URL: url, BROADCASTER_API_KEY: key, BROADCASTER_API_SECRET: secret } = process.env;
if (!url || !key || !secret) {
  throw new Error('BROADCASTER_URL, BROADCASTER_API_KEY and BROADCASTER_API_SECRET are required');
}
const client = new StreamClient(key, secret, { basePath: url, timeout: 30000 });
const run = randomUUID().slice(0, 8);

async function status(promise) {
  try {
    await promise;
    return 200;
  } catch (e) {
    return e.metadata?.responseCode ?? e.code ?? e.status;
  }
}

test('v2 segments: create, add, query with cursors, exists, delete', async () => {
  const id = `v2seg-${run}`;
  const made = await client.chat.createSegment({ type: 'user', id, name: 'v2 node' });
  assert.equal(made.segment.id, id);
  assert.ok(made.segment.created_at instanceof Date && !Number.isNaN(made.segment.created_at.getTime()));
  const ids = Array.from({ length: 7 }, (_, i) => `n2-${i}`);
  await client.chat.addSegmentTargets({ id, target_ids: ids });
  assert.equal((await client.chat.getSegment({ id })).segment.size, 7);
  assert.equal(await status(client.chat.segmentTargetExists({ id, target_id: 'n2-3' })), 200);
  assert.equal(await status(client.chat.segmentTargetExists({ id, target_id: 'nobody' })), 404);
  const p1 = await client.chat.querySegmentTargets({ id, limit: 3 });
  assert.deepEqual(p1.targets.map((t) => t.target_id), ids.slice(0, 3));
  const p2 = await client.chat.querySegmentTargets({
    id, limit: 3, next: p1.next, filter: { target_id: { $lte: 'n2-0' } }, sort: [{ field: 'target_id', direction: -1 }],
  });
  assert.deepEqual(p2.targets.map((t) => t.target_id), ids.slice(3, 6));
  await client.chat.deleteSegmentTargets({ id, target_ids: ids.slice(0, 2) });
  const found = await client.chat.querySegments({ filter: { id: { $eq: id } } });
  assert.deepEqual(found.segments.map((s) => [s.id, s.size]), [[id, 5]]);
  await client.chat.deleteSegment({ id });
  assert.equal(await status(client.chat.getSegment({ id })), 404);
});

test('v2 users, channels and a campaign run', async () => {
  const boss = `v2boss-${run}`;
  const fans = [0, 1, 2].map((i) => `v2fan-${run}-${i}`);
  await client.upsertUsers([{ id: boss, name: 'Boss' }, ...fans.map((id, i) => ({ id, name: `Fan ${i}` }))]);
  const users = await client.queryUsers({ payload: { filter_conditions: { id: { $in: fans } } } });
  assert.deepEqual(users.users.map((u) => u.id).sort(), [...fans].sort());

  const id = `v2camp-${run}`;
  const made = await client.chat.createCampaign({
    id, sender_id: boss, user_ids: fans, name: 'v2 node',
    message_template: { text: 'Hi {{ receiver.name }}' }, create_channels: true,
    channel_template: { type: 'messaging', id: '{{ receiver.id }}-v2n' },
  });
  assert.equal(made.campaign.status, 'draft');
  assert.equal(made.campaign.sender.id, boss);
  const page = await client.chat.getCampaign({ id, limit: 2 });
  assert.deepEqual(page.campaign.users.map((u) => u.id), fans.slice(0, 2));
  const rest = await client.chat.getCampaign({ id, limit: 2, next: page.users.next });
  assert.deepEqual(rest.campaign.users.map((u) => u.id), fans.slice(2));
  assert.equal((await client.chat.startCampaign({ id })).campaign.status, 'in_progress');
  const deadline = Date.now() + 60000;
  let c;
  for (;;) {
    c = (await client.chat.getCampaign({ id })).campaign;
    if (c.status === 'completed' || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(c.status, 'completed');
  assert.equal(c.stats.stats_messages_sent, 3);
  assert.ok(c.stats.stats_completed_at instanceof Date);
  const listed = await client.chat.queryCampaigns({ filter: { id: { $eq: id } }, user_limit: 1 });
  assert.deepEqual(listed.campaigns.map((x) => [x.id, x.users.length]), [[id, 1]]);

  const channel = client.chat.channel('messaging', `${fans[1]}-v2n`);
  const state = await channel.getOrCreate({});
  assert.deepEqual(state.messages.map((m) => m.text), ['Hi Fan 1']);
  const chans = await client.chat.queryChannels({ filter_conditions: { members: { $in: [fans[1]] } } });
  assert.deepEqual(chans.channels.map((x) => x.channel.cid), [`messaging:${fans[1]}-v2n`]);

  const later = `v2later-${run}`;
  await client.chat.createCampaign({ id: later, sender_id: boss, user_ids: fans, message_template: { text: 'x' } });
  const sched = await client.chat.startCampaign({ id: later, scheduled_for: new Date(Date.now() + 3600_000) });
  assert.equal(sched.campaign.status, 'scheduled');
  assert.equal((await client.chat.stopCampaign({ id: later })).status, 'stopped');
  await client.chat.deleteCampaign({ id: later });
  assert.equal(await status(client.chat.getCampaign({ id: later })), 404);
});
