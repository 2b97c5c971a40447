// The npm `stream-chat` SDK (v9) against a live broadcaster: the segment and campaign flows of
// the hosted API's SDK. Run by tests/test_node_sdk.py, which starts the server and a worker and
// passes BROADCASTER_URL, BROADCASTER_API_KEY and BROADCASTER_API_SECRET.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { before, describe, test } from 'node:test';

import { StreamChat } from 'stream-chat';

const { BROADCASTER_URL: url, BROADCASTER_API_KEY: key, BROADCASTER_API_SECRET: secret } = process.env;
if (!url || !key || !secret) {
  throw new Error('BROADCASTER_URL, BROADCASTER_API_KEY and BROADCASTER_API_SECRET are required');
}

const client = new StreamChat(key, secret, { baseURL: url, timeout: 30000 });
const run = randomUUID().slice(0, 8);

async function until(what, check, ms = 60000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function status(promise) {
  try {
    await promise;
    return 200;
  } catch (e) {
    return e.response?.status ?? e.status;
  }
}

describe('segments', () => {
  test('create, addTargets, queryTargets next/prev, targetExists, removeTargets, querySegments', async () => {
    const segment = client.segment('user', `seg-${run}`, { name: 'node list', description: 'npm sdk' });
    const made = await segment.create();
    assert.equal(made.segment.id, `seg-${run}`);
    assert.equal(made.segment.type, 'user');
    const ids = Array.from({ length: 12 }, (_, i) => `node-${String(i).padStart(2, '0')}`);
    await segment.addTargets(ids);
    assert.equal((await segment.get()).segment.size, 12);
    assert.equal(await status(segment.targetExists('node-03')), 200);
    assert.equal(await status(segment.targetExists('node-99')), 404);

    const p1 = await segment.queryTargets({}, [], { limit: 5 });
    assert.deepEqual(p1.targets.map((t) => t.target_id), ids.slice(0, 5));
    assert.ok(p1.next && !p1.prev);
    // a cursor goes on with its own query, whatever filter and sort come along with it
    const p2 = await segment.queryTargets(
      { target_id: { $lte: 'node-01' } }, [{ field: 'target_id', direction: -1 }], { limit: 5, next: p1.next },
    );
    assert.deepEqual(p2.targets.map((t) => t.target_id), ids.slice(5, 10));
    assert.ok(p2.next && p2.prev);
    const back = await segment.queryTargets({}, [], { limit: 5, prev: p2.prev });
    assert.deepEqual(back.targets.map((t) => t.target_id), ids.slice(0, 5));
    const desc = await segment.queryTargets({ target_id: { $gte: 'node-09' } }, [{ field: 'target_id', direction: -1 }]);
    assert.deepEqual(desc.targets.map((t) => t.target_id), ['node-11', 'node-10', 'node-09']);

    await segment.removeTargets(ids.slice(0, 4));
    assert.equal((await segment.get()).segment.size, 8);
    assert.equal(await status(segment.targetExists('node-00')), 404);

    const found = await client.querySegments({ id: { $eq: `seg-${run}` } }, [{ field: 'created_at', direction: -1 }]);
    assert.deepEqual(found.segments.map((s) => s.id), [`seg-${run}`]);
    await segment.delete();
    assert.equal(await status(segment.get()), 404);
  });
});

describe('campaigns', () => {
  const sender = `boss-${run}`;
  const fans = Array.from({ length: 5 }, (_, i) => `fan-${run}-${i}`);

  before(async () => {
    await client.upsertUsers([{ id: sender, name: 'Boss' }, ...fans.map((id, i) => ({ id, name: `Fan ${i}` }))]);
  });

  test('create with channel_template, start, getCampaign with users paging, query, stop, delete', async () => {
    const campaign = client.campaign(`camp-${run}`, {
      name: 'node campaign',
      sender_id: sender,
      user_ids: [...fans].reverse(),
      message_template: { text: 'Hi {{ receiver.name }}, from {{ sender.name }}' },
      create_channels: true,
      channel_template: { type: 'messaging', id: '{{ receiver.id }}-node', custom: { origin: 'npm' } },
      sender_visibility: 'hidden',
    });
    const made = await campaign.create();
    assert.equal(made.campaign.status, 'draft');
    assert.equal(made.campaign.sender.id, sender);
    assert.equal(made.campaign.sender_visibility, 'hidden');

    const u1 = await campaign.get({ users: { limit: 2 } });
    assert.deepEqual(u1.campaign.users.map((u) => u.id), fans.slice(0, 2));
    assert.ok(u1.users.next && !u1.users.prev);
    const u2 = await campaign.get({ users: { limit: 2, next: u1.users.next } });
    assert.deepEqual(u2.campaign.users.map((u) => u.id), fans.slice(2, 4));
    assert.ok(u2.users.next && u2.users.prev);
    const u0 = await campaign.get({ users: { limit: 2, prev: u2.users.prev } });
    assert.deepEqual(u0.campaign.users.map((u) => u.id), fans.slice(0, 2));

    const started = await campaign.start();
    assert.equal(started.campaign.status, 'in_progress');
    const done = await until('the campaign to complete', async () => {
      const c = (await campaign.get()).campaign;
      return c.status === 'completed' && c;
    });
    assert.equal(done.stats.stats_messages_sent, 5);
    const channel = client.channel('messaging', `${fans[2]}-node`);
    const state = await channel.query({ messages: { limit: 5 } });
    assert.equal(state.channel.origin, 'npm');
    assert.equal(state.messages.length, 1);
    assert.equal(state.messages[0].text, 'Hi Fan 2, from Boss');

    const listed = await client.queryCampaigns({ id: { $eq: `camp-${run}` } }, [{ field: 'created_at', direction: -1 }], { limit: 10 });
    assert.deepEqual(listed.campaigns.map((c) => c.id), [`camp-${run}`]);

    const later = client.campaign(`later-${run}`, {
      sender_id: sender, user_ids: fans, message_template: { text: 'later' },
    });
    await later.create();
    const scheduled = await later.start({ scheduledFor: new Date(Date.now() + 3600_000).toISOString() });
    assert.equal(scheduled.campaign.status, 'scheduled');
    assert.equal((await later.stop()).campaign.status, 'stopped');
    await later.delete();
    assert.equal(await status(later.get()), 404);
    await campaign.delete();
    assert.equal(await status(campaign.get()), 404);
  });
});
