CREATE TABLE `repositories` (
	`name` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL
);
