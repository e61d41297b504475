CREATE TABLE `immutability_rules` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text,
	`repository` text,
	`tag_pattern` text NOT NULL,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	FOREIGN KEY (`namespace`) REFERENCES `namespaces`(`name`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`repository`) REFERENCES `repositories`(`name`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "immutability_rules_scope" CHECK((namespace IS NULL) <> (repository IS NULL))
);
--> statement-breakpoint
CREATE UNIQUE INDEX `immutability_rules_namespace` ON `immutability_rules` (`namespace`,`tag_pattern`);--> statement-breakpoint
CREATE UNIQUE INDEX `immutability_rules_repository` ON `immutability_rules` (`repository`,`tag_pattern`);--> statement-breakpoint
CREATE TABLE `lifecycle_revision` (
	`id` integer PRIMARY KEY NOT NULL,
	`revision` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `prune_policies` (
	`id` text PRIMARY KEY NOT NULL,
	`namespace` text,
	`repository` text,
	`method` text NOT NULL,
	`value` integer NOT NULL,
	`tag_pattern` text,
	`created_at` integer DEFAULT (unixepoch('subsec') * 1000) NOT NULL,
	FOREIGN KEY (`namespace`) REFERENCES `namespaces`(`name`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`repository`) REFERENCES `repositories`(`name`) ON UPDATE no action ON DELETE cascade,
	CONSTRAINT "prune_policies_scope" CHECK((namespace IS NULL) <> (repository IS NULL))
);
--> statement-breakpoint
CREATE INDEX `prune_policies_namespace` ON `prune_policies` (`namespace`);--> statement-breakpoint
CREATE INDEX `prune_policies_repository` ON `prune_policies` (`repository`);--> statement-breakpoint
CREATE TABLE `tag_retention` (
	`namespace` text PRIMARY KEY NOT NULL,
	`retention_seconds` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`namespace`) REFERENCES `namespaces`(`name`) ON UPDATE no action ON DELETE cascade
);
