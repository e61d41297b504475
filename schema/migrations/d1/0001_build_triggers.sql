CREATE TABLE `build_triggers` (
	`id` text PRIMARY KEY NOT NULL,
	`repository` text NOT NULL,
	`provider` text NOT NULL,
	`clone_url` text NOT NULL,
	`dockerfile_path` text NOT NULL,
	`context_dir` text NOT NULL,
	`ref_filter` text NOT NULL,
	`tag_templates` text NOT NULL,
	`default_branch` text,
	`enabled` integer DEFAULT true NOT NULL,
	`secret_sealed` text NOT NULL,
	`owner_id` text,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`repository`) REFERENCES `repositories`(`name`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`owner_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `build_triggers_repository` ON `build_triggers` (`repository`,`id`);--> statement-breakpoint
CREATE TABLE `hook_deliveries` (
	`trigger_id` text NOT NULL,
	`delivery_id` text NOT NULL,
	`received_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	`build_id` text,
	PRIMARY KEY(`trigger_id`, `delivery_id`),
	FOREIGN KEY (`trigger_id`) REFERENCES `build_triggers`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `hook_deliveries_expires` ON `hook_deliveries` (`expires_at`);