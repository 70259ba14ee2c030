CREATE TABLE "invitations" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"organization_id" uuid NOT NULL,
	"workspace_id" uuid,
	"email" text NOT NULL,
	"role" text NOT NULL,
	"kind" text NOT NULL,
	"status" text DEFAULT 'pending' NOT NULL,
	"token_hash" text NOT NULL,
	"invited_by" uuid,
	"expires_at" timestamp (3) with time zone NOT NULL,
	"created_at" timestamp (3) with time zone NOT NULL,
	"updated_at" timestamp (3) with time zone NOT NULL,
	"accepted_at" timestamp (3) with time zone,
	"accepted_user_id" uuid,
	CONSTRAINT "invitations_status_check" CHECK ("invitations"."status" in ('pending', 'accepted', 'declined', 'revoked', 'expired')),
	CONSTRAINT "invitations_kind_check" CHECK ("invitations"."kind" in ('member', 'guest')),
	CONSTRAINT "invitations_role_check" CHECK (("invitations"."workspace_id" is null and "invitations"."role" in ('owner', 'admin', 'member')) or ("invitations"."workspace_id" is not null and "invitations"."role" in ('admin', 'member', 'viewer')))
);
--> statement-breakpoint
ALTER TABLE "organizations" ADD COLUMN "invitation_window_started_at" timestamp (3) with time zone;--> statement-breakpoint
ALTER TABLE "organizations" ADD COLUMN "invitations_in_window" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "effective_allow_guests" boolean DEFAULT false NOT NULL;--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_organization_id_organizations_id_fk" FOREIGN KEY ("organization_id") REFERENCES "public"."organizations"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_invited_by_users_id_fk" FOREIGN KEY ("invited_by") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "invitations" ADD CONSTRAINT "invitations_accepted_user_id_users_id_fk" FOREIGN KEY ("accepted_user_id") REFERENCES "public"."users"("id") ON DELETE set null ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "invitations_token_hash_key" ON "invitations" USING btree ("token_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "invitations_one_pending_key" ON "invitations" USING btree ("organization_id",coalesce("workspace_id", '00000000-0000-0000-0000-000000000000'::uuid),lower("email")) WHERE "invitations"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "invitations_org_created_idx" ON "invitations" USING btree ("organization_id","created_at","id");--> statement-breakpoint
CREATE INDEX "invitations_workspace_created_idx" ON "invitations" USING btree ("workspace_id","created_at","id") WHERE "invitations"."workspace_id" is not null;--> statement-breakpoint
CREATE INDEX "invitations_org_pending_idx" ON "invitations" USING btree ("organization_id","expires_at") WHERE "invitations"."status" = 'pending';--> statement-breakpoint
CREATE INDEX "invitations_inviter_idx" ON "invitations" USING btree ("invited_by","organization_id") WHERE "invitations"."status" = 'pending';--> statement-breakpoint
-- Backfill: the resolved allow_guests of every existing workspace, as
-- modules/workspaces/access.ts derives it (see 0005 for visibility and default role).
UPDATE "workspaces" AS w SET
	"effective_allow_guests" = CASE WHEN o."settings_locks" ? 'permissions' OR o."settings_locks" ? 'permissions.allow_guests'
		THEN coalesce((o."settings" #>> '{permissions,allow_guests}')::boolean, false)
		ELSE coalesce((w."settings" #>> '{permissions,allow_guests}')::boolean, (o."settings" #>> '{permissions,allow_guests}')::boolean, false) END
FROM "organizations" AS o
WHERE o."id" = w."organization_id";
