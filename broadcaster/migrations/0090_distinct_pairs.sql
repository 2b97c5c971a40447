-- The distinct channel of one or two users is found by its member pair, not by a hash of it
-- (issue 15). Until now its id was '!members-' || md5(sorted pair): every channel, member and
-- message-index insert of a campaign landed at a random position of an index keyed by cid, and
-- once those indexes outgrew shared_buffers each insert was a random read (5M recipients ran at
-- 0.67 of the 1M rate). New distinct channels get time-ordered ids ('!members-' || a UUIDv7),
-- so channels, members and messages_channel grow at their right edge; the pair index below is
-- what get-or-create and campaigns look the channel up by. Within a campaign the receivers
-- arrive in ascending order, so its inserts and probes sweep this index from left to right
-- (two sweeps: pairs where the sender sorts first, and pairs where it sorts second).
--
-- pair_lo <= pair_hi by bytes (COLLATE "C", as ids.member_pair); a 1-member distinct channel
-- has pair_lo = pair_hi. Channels with explicit ids and distinct channels of 3+ members have
-- no pair (they keep their id derivation). Soft-deleted channels keep their pair: the same
-- channel is revived, as it was when the id was the hash.
ALTER TABLE channels ADD COLUMN pair_lo text, ADD COLUMN pair_hi text;

-- Existing distinct channels: the pair is the one (or two) of its members whose md5 is its id.
-- Trying every pair of members also finds channels that gained members since (campaign
-- members_template, later additions); a channel that lost one of its pair keeps no pair and is
-- not found by pair lookups any more (a new distinct channel would be created for that pair).
UPDATE channels c SET pair_lo = p.lo, pair_hi = p.hi
FROM (
    SELECT m1.app_id, m1.cid, m1.user_id AS lo, m2.user_id AS hi
    FROM channels ch
    JOIN members m1 ON m1.app_id = ch.app_id AND m1.cid = ch.cid
    JOIN members m2 ON m2.app_id = ch.app_id AND m2.cid = ch.cid
        AND m1.user_id COLLATE "C" <= m2.user_id COLLATE "C"
    WHERE ch.id LIKE '!members-%'
      AND ch.id = '!members-' || md5(CASE WHEN m1.user_id = m2.user_id THEN m1.user_id
                                          ELSE m1.user_id || ',' || m2.user_id END)
) p
WHERE c.app_id = p.app_id AND c.cid = p.cid;

CREATE UNIQUE INDEX channels_distinct_pair ON channels (app_id, type, pair_lo, pair_hi)
    WHERE pair_lo IS NOT NULL;
