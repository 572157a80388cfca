-- Committed snapshots remember their usage, so that image filesystem usage is cheap to report.
ALTER TABLE "snapshots" ADD COLUMN "size" BIGINT NOT NULL DEFAULT 0;
ALTER TABLE "snapshots" ADD COLUMN "inodes" BIGINT NOT NULL DEFAULT 0;
