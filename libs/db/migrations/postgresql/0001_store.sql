-- Store metadata: blobs, snapshots, images and their names, leases.
CREATE TABLE "blobs" (
    "digest" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "media_type" TEXT NOT NULL DEFAULT '',
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "blobs_pkey" PRIMARY KEY ("digest")
);

CREATE TABLE "snapshots" (
    "key" TEXT NOT NULL,
    "dir_id" INTEGER NOT NULL,
    "kind" TEXT NOT NULL,
    "parent" TEXT,
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "snapshots_pkey" PRIMARY KEY ("key")
);
CREATE UNIQUE INDEX "snapshots_dir_id_key" ON "snapshots"("dir_id");
CREATE INDEX "snapshots_parent_idx" ON "snapshots"("parent");
ALTER TABLE "snapshots" ADD CONSTRAINT "snapshots_parent_fkey" FOREIGN KEY ("parent") REFERENCES "snapshots"("key") ON DELETE RESTRICT ON UPDATE CASCADE;

CREATE TABLE "images" (
    "id" TEXT NOT NULL,
    "manifest_digest" TEXT NOT NULL,
    "size" BIGINT NOT NULL,
    "top_chain_id" TEXT NOT NULL DEFAULT '',
    "pinned" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "images_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "image_names" (
    "name" TEXT NOT NULL,
    "image_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    CONSTRAINT "image_names_pkey" PRIMARY KEY ("name")
);
CREATE INDEX "image_names_image_id_idx" ON "image_names"("image_id");
ALTER TABLE "image_names" ADD CONSTRAINT "image_names_image_id_fkey" FOREIGN KEY ("image_id") REFERENCES "images"("id") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "leases" (
    "id" TEXT NOT NULL,
    "expires_at" TIMESTAMP(3),
    "labels" TEXT NOT NULL DEFAULT '{}',
    "created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "leases_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "lease_resources" (
    "lease_id" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "ref" TEXT NOT NULL,
    CONSTRAINT "lease_resources_pkey" PRIMARY KEY ("lease_id", "kind", "ref")
);
CREATE INDEX "lease_resources_kind_ref_idx" ON "lease_resources"("kind", "ref");
ALTER TABLE "lease_resources" ADD CONSTRAINT "lease_resources_lease_id_fkey" FOREIGN KEY ("lease_id") REFERENCES "leases"("id") ON DELETE CASCADE ON UPDATE CASCADE;
