-- Slugs are lowercase ASCII letters, digits and hyphens, so the "C" collation orders them as
-- the server's default would, byte by byte. In "C" order every slug of a family (base,
-- base-2, base-3 …) lies in one index range [stem, stem || '~'), which the unique indexes on
-- slug serve directly: finding the taken slugs of a batch costs a range scan per name,
-- whatever the size of the organization. (drizzle's schema cannot declare a column
-- collation; src/db/schema notes it beside each column.)
ALTER TABLE "organizations" ALTER COLUMN "slug" SET DATA TYPE text COLLATE "C";--> statement-breakpoint
ALTER TABLE "workspaces" ALTER COLUMN "slug" SET DATA TYPE text COLLATE "C";
