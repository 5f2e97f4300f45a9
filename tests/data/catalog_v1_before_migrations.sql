-- A catalog as picsift wrote it before its schema had migrations (schema version 1, sqlite3 .dump):
-- 12 imported digits in 3 classes, one relabelled, one excluded, one run, one pending feedback item.
BEGIN TRANSACTION;
CREATE TABLE actions (
	id INTEGER NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	actor VARCHAR(100) NOT NULL, 
	reason TEXT NOT NULL, 
	payload JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	undone_at DATETIME, 
	PRIMARY KEY (id)
);
INSERT INTO "actions" VALUES(1,'curate','picsift','quality','{"count": 1}','2026-11-30 20:22:05.819363',NULL);
CREATE TABLE classes (
	name VARCHAR(200) NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (name)
);
INSERT INTO "classes" VALUES('0','2026-11-30 20:22:05.678702');
INSERT INTO "classes" VALUES('1','2026-11-30 20:22:05.678706');
INSERT INTO "classes" VALUES('2','2026-11-30 20:22:05.678709');
CREATE TABLE exclusions (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	action_id INTEGER, 
	reason TEXT NOT NULL, 
	actor VARCHAR(100) NOT NULL, 
	created_at DATETIME NOT NULL, 
	active BOOLEAN NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id), 
	FOREIGN KEY(action_id) REFERENCES actions (id)
);
INSERT INTO "exclusions" VALUES(1,2,1,'blurry','picsift','2026-11-30 20:22:05.820320',1);
CREATE TABLE feedback (
	id INTEGER NOT NULL, 
	prediction_id VARCHAR(64), 
	label VARCHAR(200) NOT NULL, 
	comment TEXT NOT NULL, 
	predicted_label VARCHAR(200), 
	confidence FLOAT, 
	model_version VARCHAR(200), 
	sha256 VARCHAR(64), 
	image_path TEXT, 
	status VARCHAR(12) NOT NULL, 
	reviewer VARCHAR(100), 
	reviewed_at DATETIME, 
	image_id INTEGER, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id)
);
INSERT INTO "feedback" VALUES(1,NULL,'2','legacy',NULL,NULL,NULL,'8cec428eef787fc56232781b22d8bf3524440a395b2b5c4572e2384801aad113','feedback/images/8c/8cec428eef787fc56232781b22d8bf3524440a395b2b5c4572e2384801aad113.png','pending',NULL,NULL,NULL,'2026-11-30 20:22:05.886489');
CREATE TABLE images (
	id INTEGER NOT NULL, 
	sha256 VARCHAR(64) NOT NULL, 
	path TEXT NOT NULL, 
	source TEXT NOT NULL, 
	source_kind VARCHAR(16) NOT NULL, 
	byte_size INTEGER NOT NULL, 
	width INTEGER, 
	height INTEGER, 
	format VARCHAR(16), 
	mode VARCHAR(16), 
	n_frames INTEGER NOT NULL, 
	exif_time VARCHAR(32), 
	exif_camera TEXT, 
	gps_lat FLOAT, 
	gps_lon FLOAT, 
	readable BOOLEAN NOT NULL, 
	error TEXT, 
	label VARCHAR(200), 
	label_version INTEGER NOT NULL, 
	split VARCHAR(8), 
	split_origin VARCHAR(8), 
	duplicate_of INTEGER, 
	excluded BOOLEAN NOT NULL, 
	import_id INTEGER, 
	added_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (path), 
	FOREIGN KEY(duplicate_of) REFERENCES images (id), 
	FOREIGN KEY(import_id) REFERENCES imports (id)
);
INSERT INTO "images" VALUES(1,'833d1ac1e25d155ba7408ee0706abc50b045afed9fcee5bc6219ff65d5b39726','/tmp/legacy/digits/0/0.png','/tmp/legacy/digits','folder',208,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'1',2,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678056');
INSERT INTO "images" VALUES(2,'887e4e3c64d3a914e20f8d6a37a0591fe714865c8fd1c610f363bff145fd8e38','/tmp/legacy/digits/0/10.png','/tmp/legacy/digits','folder',207,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'0',1,'train','auto',NULL,1,1,'2026-11-30 20:22:05.678078');
INSERT INTO "images" VALUES(3,'787b0c6bf67f4ba4d25aae532d88a4f2cf4cf633b3fc66aa156d4f188e0caadf','/tmp/legacy/digits/0/20.png','/tmp/legacy/digits','folder',204,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'0',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678083');
INSERT INTO "images" VALUES(4,'1edafe07fc058d717359c2d81e9f10fad9ce3be2900e64758de0eee210e76762','/tmp/legacy/digits/0/30.png','/tmp/legacy/digits','folder',201,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'0',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678087');
INSERT INTO "images" VALUES(5,'76998d74192615aa665157b2899f2a5580f349762d8949bea51aada954e5f515','/tmp/legacy/digits/1/1.png','/tmp/legacy/digits','folder',182,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'1',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678091');
INSERT INTO "images" VALUES(6,'7abbcb68fae4922f918f23876f53ebc906992a55d56d263905066d4cce1d4e44','/tmp/legacy/digits/1/11.png','/tmp/legacy/digits','folder',183,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'1',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678095');
INSERT INTO "images" VALUES(7,'81bf0b4b7d727fa67891057304c69a8832aad8849b7cd73dabeecd1acbbf6d18','/tmp/legacy/digits/1/21.png','/tmp/legacy/digits','folder',184,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'1',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678098');
INSERT INTO "images" VALUES(8,'28260e1de5db07e5552519e35ee97542c99e8300eb91f343bb474d84fffb384f','/tmp/legacy/digits/1/42.png','/tmp/legacy/digits','folder',187,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'1',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678105');
INSERT INTO "images" VALUES(9,'6df4bab05a8a5bf677a13e5c9e7b0d5faca600c661e78f6e39d92632b06ce547','/tmp/legacy/digits/2/12.png','/tmp/legacy/digits','folder',202,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'2',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678111');
INSERT INTO "images" VALUES(10,'15d72d65311f436ad4664b3ec7d64695f9211b15107b2d75484ad3c6a15c2a26','/tmp/legacy/digits/2/2.png','/tmp/legacy/digits','folder',194,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'2',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678115');
INSERT INTO "images" VALUES(11,'82f095d26640ead09c7c640b3bd268384a68434a1cd300570cf74fd5f6e3b04f','/tmp/legacy/digits/2/22.png','/tmp/legacy/digits','folder',193,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'2',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678118');
INSERT INTO "images" VALUES(12,'919a330affe398fef4187267c0bd2dfe4da7d054b1b9bc72db415f8c8c4fdc61','/tmp/legacy/digits/2/50.png','/tmp/legacy/digits','folder',202,8,8,'PNG','RGB',1,NULL,NULL,NULL,NULL,1,NULL,'2',1,'train','auto',NULL,0,1,'2026-11-30 20:22:05.678121');
CREATE TABLE imports (
	id INTEGER NOT NULL, 
	source TEXT NOT NULL, 
	kind VARCHAR(16) NOT NULL, 
	started_at DATETIME NOT NULL, 
	counts JSON NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "imports" VALUES(1,'/tmp/legacy/digits','folder','2026-11-30 20:22:05.668428','{"source": "/tmp/legacy/digits", "kind": "folder", "workspace": "/tmp/legacy/ws", "import_id": 1, "added": 12, "duplicates": 0, "already_present": 0, "updated": 0, "unreadable": 0, "skipped": 0, "skipped_by_reason": {}, "labeled": 12, "classes": ["0", "1", "2"], "splits": {"train": 12}, "split_origins": {"auto": 12}, "seconds": 0.423}');
CREATE TABLE labels (
	id INTEGER NOT NULL, 
	image_id INTEGER NOT NULL, 
	label VARCHAR(200), 
	status VARCHAR(12) NOT NULL, 
	origin VARCHAR(16) NOT NULL, 
	annotator VARCHAR(100) NOT NULL, 
	confidence FLOAT, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(image_id) REFERENCES images (id)
);
INSERT INTO "labels" VALUES(1,1,'0','superseded','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(2,2,'0','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(3,3,'0','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(4,4,'0','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(5,5,'1','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(6,6,'1','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(7,7,'1','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(8,8,'1','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(9,9,'2','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(10,10,'2','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(11,11,'2','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(12,12,'2','accepted','import','root',NULL,'2026-11-30 20:22:05.680619');
INSERT INTO "labels" VALUES(13,1,'1','accepted','manual','ann',NULL,'2026-11-30 20:22:05.799562');
CREATE TABLE meta (
	"key" VARCHAR(64) NOT NULL, 
	value TEXT NOT NULL, 
	PRIMARY KEY ("key")
);
INSERT INTO "meta" VALUES('schema_version','1');
INSERT INTO "meta" VALUES('labels_normalized','1');
CREATE TABLE runs (
	id VARCHAR(64) NOT NULL, 
	path TEXT NOT NULL, 
	model VARCHAR(100) NOT NULL, 
	catalog_hash VARCHAR(64) NOT NULL, 
	created_at DATETIME NOT NULL, 
	metrics JSON NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "runs" VALUES('r1','/runs/r1','fastcnn','13916d4a34c0c030ee7a2eff6a9c5a95a982f24a3f81bddecf2529386393e7f6','2026-11-30 20:22:05.857099','{"acc": 0.5}');
CREATE INDEX ix_images_label ON images (label);
CREATE INDEX ix_images_sha256 ON images (sha256);
CREATE INDEX ix_images_excluded ON images (excluded);
CREATE INDEX ix_images_readable ON images (readable);
CREATE INDEX ix_images_split ON images (split);
CREATE INDEX ix_labels_status ON labels (status);
CREATE INDEX ix_labels_image_id ON labels (image_id);
CREATE INDEX ix_exclusions_action_id ON exclusions (action_id);
CREATE INDEX ix_exclusions_active ON exclusions (active);
CREATE INDEX ix_exclusions_image_id ON exclusions (image_id);
CREATE INDEX ix_feedback_prediction_id ON feedback (prediction_id);
CREATE INDEX ix_feedback_sha256 ON feedback (sha256);
CREATE INDEX ix_feedback_status ON feedback (status);
COMMIT;
