CREATE TABLE `builds` (
	`id` text PRIMARY KEY NOT NULL,
	`repository` text NOT NULL,
	`trigger_id` text,
	`phase` text NOT NULL,
	`source` text NOT NULL,
	`dockerfile_path` text NOT NULL,
	`context_dir` text NOT NULL,
	`tags` text NOT NULL,
	`requested_by` text NOT NULL,
	`queued_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer,
	`attempts` integer DEFAULT 0 NOT NULL,
	`digest` text,
	`error` text,
	`host` text,
	FOREIGN KEY (`repository`) REFERENCES `repositories`(`name`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `builds_repository_queued` ON `builds` (`repository`,`queued_at`,`id`);--> statement-breakpoint
CREATE TABLE `fleet_credentials` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`token_hash` text NOT NULL,
	`created_by` text,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	`last_used_at` integer,
	`revoked_at` integer,
	FOREIGN KEY (`created_by`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `fleet_credentials_token_hash_unique` ON `fleet_credentials` (`token_hash`);