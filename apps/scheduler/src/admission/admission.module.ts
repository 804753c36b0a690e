import { Module } from '@nestjs/common';
import { SettingsModule } from '../settings/settings.module';
import { Admission } from './admission.service';
import { SlotListener } from './slot-listener';

/** The queue and the limits: when a requested migration may start. */
@Module({ imports: [SettingsModule], providers: [Admission, SlotListener], exports: [Admission] })
export class AdmissionModule {}
