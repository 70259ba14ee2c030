ALTER TABLE "organizations" ADD COLUMN "created_by" uuid;--> statement-breakpoint
ALTER TABLE "audit_events" ADD COLUMN "client_request_id" text;--> statement-breakpoint
ALTER TABLE "organizations" ADD CONSTRAINT "organizations_created_by_users_id_fk" FOREIGN KEY ("created_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "organizations_created_by_idx" ON "organizations" USING btree ("created_by");--> statement-breakpoint
-- Organizations created before this migration: their creator is the actor of their creation event, while the account exists.
UPDATE "organizations" AS o SET "created_by" = e."actor_id" FROM "audit_events" AS e WHERE e."action" = 'organization.created' AND e."target_id" = o."id" AND EXISTS (SELECT 1 FROM "users" AS u WHERE u."id" = e."actor_id");
