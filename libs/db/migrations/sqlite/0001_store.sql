-- Store metadata: blobs, snapshots, images and their names, leases.
CREATE TABLE "blobs" (
    "digest" TEXT NOT NULL PRIMARY KEY,
    "size" BIGINT NOT NULL,
    "media_type" TEXT NOT NULL DEFAULT '',
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE "snapshots" (
    "key" TEXT NOT NULL PRIMARY KEY,
    "dir_id" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "parent" TEXT,
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "snapshots_parent_fkey" FOREIGN KEY ("parent") REFERENCES "snapshots" ("key") ON DELETE RESTRICT ON UPDATE CASCADE
);
CREATE UNIQUE INDEX "snapshots_dir_id_key" ON "snapshots"("dir_id");
CREATE INDEX "snapshots_parent_idx" ON "snapshots"("parent");

CREATE TABLE "images" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "manifest_digest" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "top_chain_id" TEXT NOT NULL DEFAULT '',
    "pinned" BOOLEAN NOT NULL DEFAULT false,
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE "image_names" (
    "name" TEXT NOT NULL PRIMARY KEY,
    "image_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    CONSTRAINT "image_names_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "images" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "image_names_image_id_idx" ON "image_names"("image_id");

CREATE TABLE "leases" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "expires_at" DATETIME,
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE "lease_resources" (
    "lease_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "ref" TEXT NOT NULL,
    PRIMARY KEY ("lease_id", "kind", "ref"),
    CONSTRAINT "lease_resources_lease_id_fkey" FOREIGN KEY ("lease_id") REFERENCES "leases" ("id") ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX "lease_resources_kind_ref_idx" ON "lease_resources"("kind", "ref");
