CREATE TABLE "workspace_members" (
	"workspace_id" uuid NOT NULL,
	"user_id" uuid NOT NULL,
	"role" text NOT NULL,
	"created_at" timestamp (3) with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "workspace_members_pkey" PRIMARY KEY("workspace_id","user_id"),
	CONSTRAINT "workspace_members_role_check" CHECK ("workspace_members"."role" in ('admin', 'member', 'viewer'))
);
--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "effective_visibility" text DEFAULT 'organization' NOT NULL;--> statement-breakpoint
ALTER TABLE "workspaces" ADD COLUMN "effective_default_role" text DEFAULT 'member' NOT NULL;--> statement-breakpoint
ALTER TABLE "workspace_members" ADD CONSTRAINT "workspace_members_workspace_id_workspaces_id_fk" FOREIGN KEY ("workspace_id") REFERENCES "public"."workspaces"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "workspace_members" ADD CONSTRAINT "workspace_members_user_id_users_id_fk" FOREIGN KEY ("user_id") REFERENCES "public"."users"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "workspace_members_user_idx" ON "workspace_members" USING btree ("user_id","workspace_id");--> statement-breakpoint
CREATE INDEX "workspace_members_workspace_created_idx" ON "workspace_members" USING btree ("workspace_id","created_at","user_id");--> statement-breakpoint
CREATE INDEX "workspaces_org_visibility_created_idx" ON "workspaces" USING btree ("organization_id","effective_visibility","created_at","id");--> statement-breakpoint
CREATE INDEX "workspaces_org_visibility_name_idx" ON "workspaces" USING btree ("organization_id","effective_visibility","name_key" collate "C","id");--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_effective_visibility_check" CHECK ("workspaces"."effective_visibility" in ('private', 'organization'));--> statement-breakpoint
ALTER TABLE "workspaces" ADD CONSTRAINT "workspaces_effective_default_role_check" CHECK ("workspaces"."effective_default_role" in ('admin', 'member', 'viewer'));--> statement-breakpoint
-- Backfill: the resolved visibility and default role of every existing workspace (defaults ←
-- organization ← workspace, a lock of the path or of all of permissions keeping the
-- organization's value), as modules/workspaces/access.ts derives them.
UPDATE "workspaces" AS w SET
	"effective_visibility" = CASE WHEN o."settings_locks" ? 'permissions' OR o."settings_locks" ? 'permissions.visibility'
		THEN coalesce(o."settings" #>> '{permissions,visibility}', 'organization')
		ELSE coalesce(w."settings" #>> '{permissions,visibility}', o."settings" #>> '{permissions,visibility}', 'organization') END,
	"effective_default_role" = CASE WHEN o."settings_locks" ? 'permissions' OR o."settings_locks" ? 'permissions.default_role'
		THEN coalesce(o."settings" #>> '{permissions,default_role}', 'member')
		ELSE coalesce(w."settings" #>> '{permissions,default_role}', o."settings" #>> '{permissions,default_role}', 'member') END
FROM "organizations" AS o
WHERE o."id" = w."organization_id";
