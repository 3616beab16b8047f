-- Number reserved for a migration of another branch of this release; empty here.
-- (Migrations are numbered 1..N without gaps; these placeholders are replaced when
-- the branches are merged.)
SELECT 1;
