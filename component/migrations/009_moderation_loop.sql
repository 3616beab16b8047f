-- The moderation loop: referral limits per group.

-- Domains `!refer` may send to, comma-separated ASCII (subdomains included); '' for any.
ALTER TABLE groups ADD COLUMN referral_domains TEXT NOT NULL DEFAULT '';
